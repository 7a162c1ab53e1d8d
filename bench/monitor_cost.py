"""What the monitor's bookkeeping costs on a big box (issue 14): run by hand,
`.venv/bin/python -m bench.monitor_cost` (own embedded PostgreSQL in a temp dir, ~2 min).

1. An export's API-call counters: the count(*) ... GROUP BY over all of netops.api_calls that
   exports used to run, against the running totals (netops.api_call_totals, migration 011), at
   100 k, 1 M and 3 M call rows; and what the totals' trigger adds to a 50-row recorder flush.
2. `netops metrics history` (collect_history) on 1 M call rows spread over 40 days, 60 runs of
   12 phases and 48 h of samples: the runs that prune 50,000 rows past the 30-day retention, the
   steady run after, and the size of history.json.

Not part of `make bench`/BENCHMARKS.md: it prints its figures.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg2
from psycopg2.extras import execute_values

from netops.config import load_settings
from netops.db.migrate import migrate
from netops.db.server import LocalPostgres
from netops.monitor.history import collect_history

FILL = ("INSERT INTO netops.api_calls (at, component, method, endpoint, status, duration_ms, attempt) "
        "SELECT now() - g * make_interval(secs => %s), 'backlog', 'GET', '/v2/ep' || (g %% 12), "
        "CASE WHEN g %% 500 = 0 THEN 429 ELSE 200 END, 300, 1 FROM generate_series(1, %s) g")


def _ms(fn: object, runs: int = 7) -> float:
    out = []
    for _ in range(runs):
        t = time.monotonic()
        fn()  # type: ignore[operator]
        out.append((time.monotonic() - t) * 1000)
    return statistics.median(out)


def counters(cur: psycopg2.extensions.cursor) -> None:
    for n in (100_000, 1_000_000, 3_000_000):
        cur.execute("TRUNCATE netops.api_calls; TRUNCATE netops.api_call_totals")
        t = time.monotonic()
        cur.execute(FILL, (1.0, n))
        fill = time.monotonic() - t
        cur.execute("VACUUM ANALYZE netops.api_calls")

        def old() -> None:
            cur.execute("SELECT endpoint, coalesce(status::text, 'none'), count(*) FROM netops.api_calls GROUP BY 1, 2")
            cur.fetchall()

        def new() -> None:
            cur.execute("SELECT endpoint, code, calls FROM netops.api_call_totals")
            cur.fetchall()

        print(f"{n:>9,} call rows (filled in {fill:.1f} s, trigger included): count(*) GROUP BY "
              f"{_ms(old):.1f} ms, running totals {_ms(new):.2f} ms (medians of 7)")
    rows = [("sync", "GET", "/v2/campus", 200, 120, 1)] * 50

    def flush() -> None:
        execute_values(cur, "INSERT INTO netops.api_calls (component, method, endpoint, status, duration_ms, attempt) "
                            "VALUES %s", rows)

    on = _ms(flush, 200)
    cur.execute("ALTER TABLE netops.api_calls DISABLE TRIGGER api_calls_totals")
    off = _ms(flush, 200)
    cur.execute("ALTER TABLE netops.api_calls ENABLE TRIGGER api_calls_totals")
    print(f"50-row flush: {on:.2f} ms with the totals trigger, {off:.2f} ms without (medians of 200)")


def history(cur: psycopg2.extensions.cursor, env: dict[str, str]) -> None:
    cur.execute("TRUNCATE netops.api_calls; TRUNCATE netops.api_call_totals")
    cur.execute(FILL, (3.456, 1_000_000))  # 40 days: ~250,000 rows past the 30-day retention
    cur.execute("INSERT INTO netops.sync_runs (run_id, phase, table_name, started_at, finished_at, status) "
                "SELECT md5(r::text)::uuid, 'p' || p, 't' || p, now() - r * interval '1 day' + p * interval '10 s', "
                "now() - r * interval '1 day' + p * interval '10 s' + interval '9 s', 'success' "
                "FROM generate_series(1, 60) r, generate_series(1, 12) p")
    cur.execute("INSERT INTO netops.monitor_samples (at, backlog_pending, backlog_processing, backlog_failed) "
                "SELECT now() - g * interval '1 minute', g % 50, 0, 0 FROM generate_series(1, 2880) g")
    cur.execute("VACUUM ANALYZE")
    settings = load_settings(env=env, config_path="")
    for i in range(6):
        t = time.monotonic()
        doc = collect_history(settings, env["NETOPS_DSN"])
        print(f"history run {i + 1}: {(time.monotonic() - t) * 1000:.0f} ms, pruned {doc['retention']['pruned']}")
    print(f"history.json: {len(json.dumps(doc, separators=(',', ':'))):,} bytes")


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="netops-monitor-cost-", dir="/tmp"))
    os.chmod(state, 0o755)  # the server user must enter it when run as root
    env = {"NETOPS_STATE_DIR": str(state), "NETOPS_LOG_DIR": str(state / "logs")}
    server = LocalPostgres(load_settings(env=env, config_path=""))
    server.up()
    try:
        dsn = server.dsn()
        migrate(dsn, state / "migrate-logs")
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            counters(cur)
            history(cur, {**env, "NETOPS_DSN": dsn})
        conn.close()
    finally:
        server.down()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
