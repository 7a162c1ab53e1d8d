"""The monitor's reads: bookkeeping tables and PostgreSQL catalogs, on one short connection.

Every query is bounded by an index or by a small table, so a snapshot stays well under a second
on a database with millions of mirrored rows: big tables are counted from catalog estimates.
The monitor (netops/monitor/) judges what these return; nothing here decides a verdict.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2
import psycopg2.extensions

from netops.db import SEARCH_PATH, locks
from netops.db.ratelimit import WaitRow, budget_waits

Cursor = psycopg2.extensions.cursor

# Tables up to this on-disk size are counted exactly (count(*) on 32 MB is a few ms when cached);
# bigger ones use the planner's estimate, scaled to the current size, and say so.
EXACT_COUNT_MAX_BYTES = 32 * 1024 * 1024
STATEMENT_TIMEOUT_MS = 5000


@contextmanager
def connect(dsn: str, timeout_s: int = 3) -> Iterator[psycopg2.extensions.connection]:
    """A short-timeout, autocommit connection: views never hold locks or long transactions."""
    conn = psycopg2.connect(dsn, connect_timeout=timeout_s, application_name="netops-monitor",
                            options=SEARCH_PATH)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        yield conn
    finally:
        conn.close()


def relation_exists(cur: Cursor, name: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    return bool(cur.fetchone()[0])


def sync_lock_held(cur: Cursor) -> bool:
    """Whether a live `netops sync` holds the sync lock now (PostgreSQL drops it with a dead
    process's session, so a `running` row without it belongs to a dead run)."""
    return locks.session_lock_held(cur, locks.SYNC)


# --- sync runs -----------------------------------------------------------------------------

@dataclass
class PhaseRun:
    """The latest row of one phase in netops.sync_runs."""

    phase: str
    table: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    pages_done: int
    pages_total: int | None
    rows_fetched: int
    rows_inserted: int
    rows_updated: int
    rows_deleted: int
    rows_skipped: int
    api_calls: int
    error: str | None
    run_id: str | None


def latest_phase_runs(cur: Cursor) -> dict[str, PhaseRun]:
    """Phase -> its latest run (duration so far while running)."""
    cur.execute(
        """
        SELECT DISTINCT ON (phase) phase, table_name, status, started_at, finished_at,
               extract(epoch FROM coalesce(finished_at, now()) - started_at)::float8,
               pages_done, pages_total, rows_fetched, rows_inserted, rows_updated, rows_deleted,
               rows_skipped, api_calls, error, run_id::text
          FROM netops.sync_runs
         ORDER BY phase, started_at DESC, id DESC
        """
    )
    return {r[0]: PhaseRun(*r) for r in cur.fetchall()}


def latest_phase_successes(cur: Cursor) -> dict[str, tuple[datetime, float]]:
    """Phase -> (finished_at, duration in seconds) of its latest successful run."""
    cur.execute(
        """
        SELECT DISTINCT ON (phase) phase, finished_at,
               extract(epoch FROM finished_at - started_at)::float8
          FROM netops.sync_runs WHERE status = 'success'
         ORDER BY phase, finished_at DESC, id DESC
        """
    )
    return {r[0]: (r[1], r[2]) for r in cur.fetchall()}


def last_run_row(cur: Cursor) -> tuple[Any, ...] | None:
    """The most recent `netops sync`, its phases grouped by run_id: (run_id, status, started_at,
    finished_at, duration_seconds, phases); the status is the worst of its phases'."""
    cur.execute(
        """
        WITH last AS (SELECT run_id FROM netops.sync_runs ORDER BY started_at DESC, id DESC LIMIT 1)
        SELECT s.run_id::text,
               CASE WHEN bool_or(s.status = 'running') THEN 'running'
                    WHEN bool_or(s.status = 'interrupted') THEN 'interrupted'
                    WHEN bool_or(s.status = 'failed') THEN 'failed' ELSE 'success' END,
               min(s.started_at), max(s.finished_at),
               extract(epoch FROM
                   CASE WHEN bool_or(s.status = 'running') THEN now() ELSE max(s.finished_at) END
                   - min(s.started_at))::float8,
               count(*)
          FROM netops.sync_runs s JOIN last USING (run_id)
         GROUP BY s.run_id
        """
    )
    row = cur.fetchone()
    return tuple(row) if row else None


# --- API calls -----------------------------------------------------------------------------

@dataclass
class ApiFacts:
    by_status_1h: dict[str, int] = field(default_factory=dict)  # "200", "429", "none" -> count
    calls_1h: int = 0
    calls_15m: int = 0
    calls_1m: int = 0
    unauthorized_1h: int = 0
    rate_limited_1h: int = 0
    secondly_remaining: int | None = None
    hourly_remaining: int | None = None
    remaining_at: datetime | None = None
    errors_by_hour: list[int] = field(default_factory=list)  # 24 buckets, oldest first
    calls_by_hour: list[int] = field(default_factory=list)
    last_call_at: datetime | None = None
    #: 401s in the last hour after the latest answered call (2xx, a token POST included): a token
    #: that works again clears them (api_unauthorized); and when the latest 401 was
    unauthorized_since_success: int = 0
    last_unauthorized_at: datetime | None = None
    #: who spent the last 15 minutes' calls: (component, key label, calls), most first (the loop rule)
    spenders_15m: list[tuple[str, str, int]] = field(default_factory=list)
    #: backlog resources whose first detect (the whole table: a backfill) runs now or ended in the last 15 min
    first_fills: list[str] = field(default_factory=list)
    #: the processes waiting for API budget now (netops.api_waits, migration 019)
    waits: list[WaitRow] = field(default_factory=list)

    @property
    def calls_per_minute(self) -> float:
        """The rate over the last 15 minutes: long enough to ride out one burst."""
        return round(self.calls_15m / 15.0, 2)


def api_facts(cur: Cursor) -> ApiFacts:
    """Call accounting from netops.api_calls; every query is a range scan on the `at` index."""
    f = ApiFacts()
    cur.execute(
        """
        SELECT coalesce(status::text, 'none'), count(*),
               count(*) FILTER (WHERE at > now() - interval '15 minutes'),
               count(*) FILTER (WHERE at > now() - interval '1 minute')
          FROM netops.api_calls WHERE at > now() - interval '1 hour' GROUP BY 1 ORDER BY 1
        """
    )
    for status, n, n15, n1 in cur.fetchall():
        f.by_status_1h[status] = n
        f.calls_1h += n
        f.calls_15m += n15
        f.calls_1m += n1
    f.unauthorized_1h = f.by_status_1h.get("401", 0)
    f.rate_limited_1h = f.by_status_1h.get("429", 0)
    cur.execute(
        """
        SELECT secondly_remaining, hourly_remaining, at FROM netops.api_calls
         WHERE at > now() - interval '1 hour'
           AND (hourly_remaining IS NOT NULL OR secondly_remaining IS NOT NULL)
         ORDER BY at DESC LIMIT 1
        """
    )
    r = cur.fetchone()
    if r:
        f.secondly_remaining, f.hourly_remaining, f.remaining_at = r
    f.errors_by_hour, f.calls_by_hour = _calls_by_hour(cur)
    cur.execute("SELECT max(at) FROM netops.api_calls")
    f.last_call_at = cur.fetchone()[0]
    f.unauthorized_since_success, f.last_unauthorized_at = _unauthorized_since_success(cur)
    _budget_facts(cur, f)
    return f


def _unauthorized_since_success(cur: Cursor) -> tuple[int, datetime | None]:
    """(401s in the last hour after the latest 2xx answer, the latest 401's time)."""
    cur.execute(
        """
        WITH ok AS (SELECT max(at) AS at FROM netops.api_calls
                     WHERE status BETWEEN 200 AND 299 AND at > now() - interval '1 hour')
        SELECT count(*) FILTER (WHERE ok.at IS NULL OR c.at > ok.at), max(c.at)
          FROM netops.api_calls c, ok WHERE c.status = 401 AND c.at > now() - interval '1 hour'
        """
    )
    n, last = cur.fetchone()
    return int(n), last


def _budget_facts(cur: Cursor, f: ApiFacts) -> None:
    """The budget rules' facts: who spends (component, key), first fills, waits for budget."""
    cur.execute(
        "SELECT component, coalesce(key_label, '-'), count(*) FROM netops.api_calls "
        "WHERE at > now() - interval '15 minutes' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2")
    f.spenders_15m = [(str(c), str(k), int(n)) for c, k, n in cur.fetchall()]
    if not relation_exists(cur, "netops.api_waits"):  # before migration 019
        return
    cur.execute(
        "SELECT resource FROM netops.backlog_marks WHERE (high_water IS NULL AND detect_started_at IS NOT NULL) "
        "OR first_filled_at > now() - interval '15 minutes' ORDER BY resource")
    f.first_fills = [str(r) for (r,) in cur.fetchall()]
    f.waits = budget_waits(cur)


def _calls_by_hour(cur: Cursor) -> tuple[list[int], list[int]]:
    """(errors, calls) in 24 hourly buckets ending now: bucket 23 is the last hour."""
    cur.execute(
        """
        SELECT least(23, floor(extract(epoch FROM now() - at) / 3600))::int AS ago,
               count(*) FILTER (WHERE status IS NULL OR status NOT BETWEEN 200 AND 299),
               count(*)
          FROM netops.api_calls WHERE at > now() - interval '24 hours' GROUP BY 1
        """
    )
    errors = [0] * 24
    calls = [0] * 24
    for ago, n_err, n in cur.fetchall():
        errors[23 - ago] = n_err
        calls[23 - ago] = n
    return errors, calls


# --- backlog (its tables may not exist yet) --------------------------------------

@dataclass
class BacklogFacts:
    available: bool = False
    pending: int = 0
    processing: int = 0
    failed: int = 0
    oldest_pending_at: datetime | None = None


def backlog_facts(cur: Cursor) -> BacklogFacts:
    if not relation_exists(cur, "netops.backlog_items"):
        return BacklogFacts(available=False)
    cur.execute(
        """
        SELECT count(*) FILTER (WHERE state = 'pending'),
               count(*) FILTER (WHERE state = 'processing'),
               count(*) FILTER (WHERE state = 'failed'),
               min(enqueued_at) FILTER (WHERE state = 'pending')
          FROM netops.backlog_items WHERE state IN ('pending', 'processing', 'failed')
        """
    )
    p, pr, fl, oldest = cur.fetchone()
    return BacklogFacts(True, p, pr, fl, oldest)


# --- tables and database -------------------------------------------------------------------

@dataclass
class TableCount:
    rows: int
    exact: bool
    bytes: int


def table_counts(cur: Cursor) -> dict[str, TableCount]:
    """Rows per mirrored table (schema public, staging delta_* excluded).

    Small tables are counted exactly; big ones use reltuples scaled to the current number of
    pages (what the planner does), or the statistics collector's live-tuple count for a table
    never analysed yet (reltuples = -1 on PostgreSQL 14+).
    """
    cur.execute(
        """
        SELECT c.relname, pg_relation_size(c.oid), c.reltuples::float8, c.relpages,
               coalesce(s.n_live_tup, 0)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'delta\\_%'
         ORDER BY c.relname
        """
    )
    rows = cur.fetchall()
    out: dict[str, TableCount] = {}
    for name, size, reltuples, relpages, live in rows:
        if size <= EXACT_COUNT_MAX_BYTES:
            cur.execute(f'SELECT count(*) FROM public."{name}"')
            out[name] = TableCount(cur.fetchone()[0], True, size)
            continue
        estimate = int(reltuples / relpages * (size / 8192)) if reltuples >= 0 and relpages > 0 else int(live)
        out[name] = TableCount(estimate, False, size)
    return out


def database_size(cur: Cursor) -> int:
    cur.execute("SELECT pg_database_size(current_database())")
    return int(cur.fetchone()[0])


def server_version(cur: Cursor) -> str:
    cur.execute("SHOW server_version")
    return str(cur.fetchone()[0])


@dataclass
class QualityFacts:
    available: bool = False
    checked_at: datetime | None = None
    violations: int = 0
    info: int = 0
    by_check: dict[str, int] = field(default_factory=dict)


def quality_facts(cur: Cursor) -> QualityFacts:
    """The last stored `netops check` (running the checks here would be too slow for status)."""
    if not relation_exists(cur, "netops.quality_runs"):
        return QualityFacts()
    cur.execute(
        "SELECT checked_at, violations, info, result FROM netops.quality_runs ORDER BY id DESC LIMIT 1"
    )
    r = cur.fetchone()
    if not r:
        return QualityFacts(available=True)
    checked_at, violations, info, result = r
    by_check: dict[str, int] = {}
    for item in (result or {}).get("findings", []):
        if item.get("severity") == "violation":
            by_check[item["kind"]] = by_check.get(item["kind"], 0) + int(item["count"])
    return QualityFacts(True, checked_at, violations, info, by_check)
