"""The 24-hour series history.json draws, and `netops.monitor_samples` (migration 011), the table
that remembers what no bookkeeping table does: backlog depth and rows per table, one row a run."""

from __future__ import annotations

import json
from typing import Any


def store_sample(cur: Any, backlog: tuple[int | None, int | None, int | None], table_rows: dict[str, int]) -> None:
    """This minute's (pending, processing, failed) backlog depth and rows per table."""
    cur.execute(
        "INSERT INTO netops.monitor_samples (backlog_pending, backlog_processing, backlog_failed, table_rows) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (at) DO NOTHING",
        (*backlog, json.dumps(table_rows)),
    )


def prune_samples(cur: Any, keep_hours: int, batch: int) -> int:
    """Delete at most `batch` samples older than `keep_hours`; return how many."""
    cur.execute(
        "DELETE FROM netops.monitor_samples WHERE at IN (SELECT at FROM netops.monitor_samples "
        "WHERE at < now() - make_interval(hours => %s) ORDER BY at LIMIT %s)", (keep_hours, batch))
    return int(cur.rowcount)


def calls_by_hour(cur: Any, hours: int) -> list[tuple[int, int, int, int, int, int]]:
    """(hour_unix, ok, 429s, 401s, other errors, calls) for `hours` clock hours, oldest first, the
    current (partial) hour last; every hour present."""
    # one range scan on the `at` index, grouped by hour; the empty hours come from the series
    cur.execute(
        """
        WITH c AS (
            SELECT date_trunc('hour', at) AS h,
                   count(*) FILTER (WHERE status BETWEEN 200 AND 399) AS ok,
                   count(*) FILTER (WHERE status = 429) AS r429,
                   count(*) FILTER (WHERE status = 401) AS r401,
                   count(*) FILTER (WHERE status IS NULL OR (status NOT BETWEEN 200 AND 399
                                                            AND status NOT IN (401, 429))) AS err,
                   count(*) AS n
              FROM netops.api_calls WHERE at >= date_trunc('hour', now()) - make_interval(hours => %s)
             GROUP BY 1)
        SELECT extract(epoch FROM g)::bigint, coalesce(c.ok, 0), coalesce(c.r429, 0), coalesce(c.r401, 0),
               coalesce(c.err, 0), coalesce(c.n, 0)
          FROM generate_series(date_trunc('hour', now()) - make_interval(hours => %s), date_trunc('hour', now()),
                               interval '1 hour') AS g
          LEFT JOIN c ON c.h = g
         ORDER BY g
        """,
        (hours - 1, hours - 1),
    )
    return cur.fetchall()


def recent_run_phases(cur: Any, runs: int) -> list[tuple[str, str, str, float, float, int]]:
    """(run_id, phase, status, started_unix, seconds, rows written) of every phase of the last
    `runs` syncs, in start order (seconds so far while running)."""
    cur.execute(
        """
        WITH runs AS (SELECT run_id FROM netops.sync_runs GROUP BY run_id
                       ORDER BY max(started_at) DESC LIMIT %s)
        SELECT s.run_id::text, s.phase, s.status, extract(epoch FROM s.started_at)::float8,
               extract(epoch FROM coalesce(s.finished_at, now()) - s.started_at)::float8,
               s.rows_inserted + s.rows_updated + s.rows_deleted
          FROM netops.sync_runs s JOIN runs USING (run_id)
         ORDER BY s.started_at, s.id
        """,
        (runs,),
    )
    return cur.fetchall()


def backlog_series(cur: Any, hours: int, bucket_seconds: int) -> list[tuple[int, int, int, int]]:
    """(bucket_unix, pending, processing, failed): each bucket's max over the last `hours`."""
    cur.execute(
        """
        SELECT (floor(extract(epoch FROM at) / %s) * %s)::bigint AS b,
               max(backlog_pending), max(backlog_processing), max(backlog_failed)
          FROM netops.monitor_samples
         WHERE at > now() - make_interval(hours => %s) AND backlog_pending IS NOT NULL
         GROUP BY b ORDER BY b
        """,
        (bucket_seconds, bucket_seconds, hours),
    )
    return cur.fetchall()


def table_rows_since(cur: Any, hours: int) -> dict[str, int]:
    """Rows per table in the oldest sample of the last `hours` (empty: no sample)."""
    cur.execute("SELECT table_rows FROM netops.monitor_samples WHERE at > now() - make_interval(hours => %s) "
                "ORDER BY at LIMIT 1", (hours,))
    r = cur.fetchone()
    return {k: int(v) for k, v in (r[0] if r else {}).items()}
