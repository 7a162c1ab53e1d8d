"""Counters for Prometheus, regenerated from the bookkeeping tables on every export.

netops commands are short-lived cron jobs, so no process lives long enough to keep an in-memory
counter. The database is the memory instead: every API attempt is a row of `netops.api_calls`,
every phase run a row of `netops.sync_runs`, every backlog item a row of `netops.backlog_items`.
A counter here is therefore the count (or sum) of those rows **over all time**, which is
monotonic for as long as the rows are kept, and identical whichever process or host exports it
(two exporters on one database export the same value; a restarted exporter does not reset it).

The one place a counter goes down is a deliberate purge (`netops backlog purge` deletes finished
backlog items): Prometheus treats a decrease as a counter reset, so `rate()`/`increase()` stay
correct across it, as they would across a process restart.

Read on their own short connection, after the evaluation: each query is an aggregate over a
small GROUP BY (endpoints x codes, phases x outcomes), bounded by the tables' size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg2

from netops.monitor import facts as F

#: the kinds of rows a phase writes (rows_<kind> in netops.sync_runs)
ROW_KINDS = ("inserted", "updated", "deleted")


@dataclass
class Counters:
    """Totals over all rows kept. Empty dicts mean "no rows yet", None means unknown."""

    api_calls: dict[tuple[str, str], int] = field(default_factory=dict)     # (endpoint, code) -> calls
    rows_written: dict[tuple[str, str], int] = field(default_factory=dict)  # (table, kind) -> rows
    runs: dict[tuple[str, str], int] = field(default_factory=dict)          # (phase, outcome) -> runs
    backlog_processed: dict[str, int] | None = None                         # outcome -> items (None: no backlog)
    last_success: dict[str, float] = field(default_factory=dict)            # task -> unix time


def read_counters(cur: Any) -> Counters:
    """All counters, on the caller's cursor (the netops schema must exist)."""
    c = Counters()
    cur.execute("SELECT endpoint, coalesce(status::text, 'none'), count(*) FROM netops.api_calls GROUP BY 1, 2")
    c.api_calls = {(e, code): n for e, code, n in cur.fetchall()}
    cur.execute(
        "SELECT table_name, sum(rows_inserted), sum(rows_updated), sum(rows_deleted) "
        "FROM netops.sync_runs WHERE status = 'success' GROUP BY 1"
    )
    for table, ins, upd, dele in cur.fetchall():
        for kind, n in zip(ROW_KINDS, (ins, upd, dele), strict=True):
            c.rows_written[(table, kind)] = int(n or 0)
    cur.execute("SELECT phase, status, count(*) FROM netops.sync_runs WHERE status <> 'running' GROUP BY 1, 2")
    c.runs = {(p, s): n for p, s, n in cur.fetchall()}
    cur.execute(
        "SELECT extract(epoch FROM max(finished_at)) FROM netops.sync_runs WHERE status IN ('success', 'unchanged')"
    )
    last_sync = cur.fetchone()[0]
    if last_sync is not None:
        c.last_success["sync_stable"] = float(last_sync)
    if F.relation_exists(cur, "netops.backlog_items"):
        cur.execute(
            "SELECT CASE WHEN state = 'failed' THEN 'failed' ELSE coalesce(outcome, 'done') END, count(*) "
            "FROM netops.backlog_items WHERE state IN ('done', 'failed') GROUP BY 1"
        )
        c.backlog_processed = {o: n for o, n in cur.fetchall()}
        cur.execute("SELECT extract(epoch FROM max(finished_at)) FROM netops.backlog_items WHERE state = 'done'")
        last_backlog = cur.fetchone()[0]
        if last_backlog is not None:
            c.last_success["backlog_run"] = float(last_backlog)
    cur.execute("SELECT extract(epoch FROM max(checked_at)) FROM netops.quality_runs")
    last_check = cur.fetchone()[0]
    if last_check is not None:
        c.last_success["check"] = float(last_check)
    return c


def collect(dsn: str | None) -> Counters | None:
    """The counters, or None when the database or the schema cannot be read (unknown, not 0)."""
    if dsn is None:
        return None
    try:
        with F.connect_monitor(dsn) as conn, conn.cursor() as cur:
            if not F.relation_exists(cur, "netops.sync_runs"):
                return None
            return read_counters(cur)
    except psycopg2.Error:
        return None
