"""All-time counters for Prometheus, read from the bookkeeping tables on every export.

netops commands are short-lived cron jobs, so no process lives long enough to keep an in-memory
counter. The database is the memory instead, and every exporter (any process, any host) reads
the same value; a restarted exporter does not reset it.

- API calls: `netops.api_call_totals` (migration 011), running totals that a statement trigger
  on `netops.api_calls` keeps in the same transaction as the rows. Not a count(*) over the call
  rows: that table gets a row per attempt (about 29,000 a day at the full budget) and is pruned
  to a retention (`netops metrics history`), so counting it would grow in cost without bound and
  would make the counter go *down* at every prune. The totals never decrease.
- Phase runs and rows written: sums over `netops.sync_runs` (a row per phase per run: a few
  thousand a year, never pruned), so a GROUP BY over it stays cheap.
- Backlog items: counts over `netops.backlog_items`. The one place a counter goes down is a
  deliberate purge (`netops backlog purge` deletes finished items): Prometheus treats a decrease
  as a counter reset, so `rate()`/`increase()` stay correct across it.

Read on the evaluation's own cursor (netops/monitor/evaluation.py, `gather(counters=True)`):
one connection per export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netops.db.monitor_facts import relation_exists

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


def _epoch(cur: Any, sql: str) -> float | None:
    cur.execute(sql)
    value = cur.fetchone()[0]
    return None if value is None else float(value)


def read_counters(cur: Any) -> Counters:
    """All counters, on the caller's cursor (the netops schema must exist)."""
    c = Counters()
    cur.execute("SELECT endpoint, code, calls FROM netops.api_call_totals")
    c.api_calls = {(e, code): int(n) for e, code, n in cur.fetchall()}
    cur.execute(
        "SELECT table_name, sum(rows_inserted), sum(rows_updated), sum(rows_deleted) "
        "FROM netops.sync_runs WHERE status = 'success' GROUP BY 1"
    )
    for table, ins, upd, dele in cur.fetchall():
        for kind, n in zip(ROW_KINDS, (ins, upd, dele), strict=True):
            c.rows_written[(table, kind)] = int(n or 0)
    cur.execute("SELECT phase, status, count(*) FROM netops.sync_runs WHERE status <> 'running' GROUP BY 1, 2")
    c.runs = {(p, s): n for p, s, n in cur.fetchall()}
    last = {"sync_stable": _epoch(cur, "SELECT extract(epoch FROM max(finished_at)) FROM netops.sync_runs "
                                       "WHERE status IN ('success', 'unchanged')")}
    if relation_exists(cur, "netops.backlog_items"):
        cur.execute(
            "SELECT CASE WHEN state = 'failed' THEN 'failed' ELSE coalesce(outcome, 'done') END, count(*) "
            "FROM netops.backlog_items WHERE state IN ('done', 'failed') GROUP BY 1"
        )
        c.backlog_processed = {o: n for o, n in cur.fetchall()}
        last["backlog_run"] = _epoch(cur, "SELECT extract(epoch FROM max(finished_at)) FROM netops.backlog_items "
                                          "WHERE state = 'done'")
    last["check"] = _epoch(cur, "SELECT extract(epoch FROM max(checked_at)) FROM netops.quality_runs")
    c.last_success = {task: t for task, t in last.items() if t is not None}
    return c
