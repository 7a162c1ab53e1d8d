"""What reading logtime_daily (migration 017, a view over locations) costs: 500,000 sessions of
20,000 people at 3 campuses (Seoul, Sao Paulo, Paris), 90 days, 1 in 250 still open.

    .venv/bin/python -m bench.logtime_read

Prints the best of 3 for one person's days, one campus's day, and the whole view.
"""

from __future__ import annotations

import time

import psycopg2

from bench.env import BenchPostgres

READS = (
    ("one person, 90 days", "SELECT day, sum(seconds) FROM logtime_daily WHERE user_id = 4242 GROUP BY day"),
    ("one campus, one day", "SELECT count(*), sum(seconds) FROM logtime_daily WHERE campus_id = 1 AND day = current_date - 3"),
    ("whole view", "SELECT count(*) FROM logtime_daily"),
)


def main() -> None:
    pg = BenchPostgres().up()
    try:
        conn = psycopg2.connect(pg.new_database())
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("INSERT INTO campuses (id, name, time_zone) VALUES (1, 'a', 'Asia/Seoul'), "
                    "(2, 'b', 'America/Sao_Paulo'), (3, 'c', 'Europe/Paris')")
        cur.execute("""INSERT INTO locations (id, user_id, campus_id, host, begin_at, end_at)
            SELECT g, g % 20000, 1 + g % 3, 'c1r1s1', now() - (g % 8640) * interval '15 minutes',
                   CASE WHEN g % 250 = 0 THEN NULL
                        ELSE now() - (g % 8640) * interval '15 minutes' + (1 + g % 10) * interval '1 hour' END
            FROM generate_series(1, 500000) g""")
        cur.execute("ANALYZE locations")
        for label, stmt in READS:
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                cur.execute(stmt)
                cur.fetchall()
                best = min(best, time.perf_counter() - t)
            print(f"{label}: {best * 1000:.0f} ms")
        conn.close()
    finally:
        pg.down()


if __name__ == "__main__":
    main()
