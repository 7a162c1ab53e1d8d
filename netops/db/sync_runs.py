"""All SQL on `netops.sync_runs`, the stable sync's history (one row per phase run).

Written on the sync's own autocommit connection (it survives a rolled-back phase and is visible to
status/metrics/dashboard while a phase runs); read by `--if-changed` to know each phase's last
pull. `phase` is the phase's table name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from netops.db import connect

ORPHAN_ERROR = ("interrupted: the sync process stopped before this phase finished "
                "(killed, crashed or the box went down); its table was left unchanged")


def close_orphans(cur: Any, run_id: str) -> int:
    """Mark `running` rows of other runs interrupted (call only while holding the sync lock)."""
    cur.execute("UPDATE netops.sync_runs SET status = 'interrupted', finished_at = now(), error = %s "
                "WHERE status = 'running' AND run_id <> %s", (ORPHAN_ERROR, run_id))
    return int(cur.rowcount)


def interrupt(cur: Any, run_id: str, reason: str) -> list[str]:
    """Mark this run's unfinished phases interrupted; returns their names."""
    cur.execute("UPDATE netops.sync_runs SET status = 'interrupted', finished_at = now(), error = %s "
                "WHERE run_id = %s AND status = 'running' RETURNING phase",
                (f"interrupted: {reason}; its table was left unchanged", run_id))
    return [r[0] for r in cur.fetchall()]


def start(cur: Any, run_id: str, phase: str) -> int:
    cur.execute("INSERT INTO netops.sync_runs (run_id, phase, table_name) VALUES (%s, %s, %s) RETURNING id",
                (run_id, phase, phase))
    return int(cur.fetchone()[0])


def progress(cur: Any, row_id: int, pages_done: int, pages_total: int | None, rows: int) -> None:
    cur.execute("UPDATE netops.sync_runs SET pages_done = %s, pages_total = COALESCE(%s, pages_total), "
                "rows_fetched = %s WHERE id = %s", (pages_done, pages_total, rows, row_id))


def finish(cur: Any, row_id: int, status: str, fetched: int, inserted: int, updated: int, deleted: int,
           skipped: int, api_calls: int, error: str | None) -> None:
    cur.execute(
        "UPDATE netops.sync_runs SET finished_at = now(), status = %s, rows_fetched = %s, "
        "rows_inserted = %s, rows_updated = %s, rows_deleted = %s, rows_skipped = %s, "
        "api_calls = %s, error = %s, pages_done = GREATEST(pages_done, COALESCE(pages_total, 0)) "
        "WHERE id = %s",
        (status, fetched, inserted, updated, deleted, skipped, api_calls, error, row_id),
    )


def record_unchanged(cur: Any, run_id: str, phase: str, status: str, calls: int, note: str) -> None:
    """A phase the probe skipped: nothing written, `api_calls` = the probe calls attributed to it."""
    cur.execute(
        "INSERT INTO netops.sync_runs (run_id, phase, table_name, finished_at, status, rows_fetched, "
        "api_calls, pages_done, pages_total, probe) VALUES (%s, %s, %s, now(), %s, 0, %s, 0, 0, %s)",
        (run_id, phase, phase, status, calls, note),
    )


@dataclass(frozen=True)
class PhaseHistory:
    """A phase's last real pull ('unchanged' rows are not pulls)."""

    last_status: str | None       # 'success' or 'failed' (a dead run's 'running' rows are failed)
    last_success: datetime | None


def history(cur: Any) -> dict[str, PhaseHistory]:
    """Each phase's last pull outcome and last successful pull."""
    cur.execute(
        "SELECT phase, (array_agg(status ORDER BY started_at DESC, id DESC) "
        "FILTER (WHERE status IN ('success', 'failed')))[1], "
        "max(finished_at) FILTER (WHERE status = 'success') "
        "FROM netops.sync_runs GROUP BY phase"
    )
    return {phase: PhaseHistory(status, success) for phase, status, success in cur.fetchall()}


class PhaseOutcome(Protocol):
    """What `Bookkeeping.finish` records of a phase (the pipeline's PhaseReport has these)."""

    status: str
    fetched: int
    inserted: int
    updated: int
    deleted: int
    skipped: int
    api_calls: int
    error: str | None


class Bookkeeping:
    """One sync run's rows, written on their own autocommit connection (they survive a rolled-back
    phase and are visible while it runs); in-flight progress is written at most every 0.5 s."""

    PROGRESS_INTERVAL = 0.5

    def __init__(self, dsn: str, run_id: str) -> None:
        self.conn = connect(dsn, autocommit=True, application_name="netops-bookkeeping")
        self.run_id = run_id
        self._last_progress = 0.0

    def close_orphans(self) -> int:
        """Mark `running` rows of earlier syncs interrupted; returns how many.

        Called only while holding the sync lock, so no other sync is running: a `running` row
        belongs to a process that died before it could finish it, and would otherwise show a sync
        "running" forever. Its table is unaffected: the dead phase's transaction never committed.
        """
        with self.conn.cursor() as cur:
            return close_orphans(cur, self.run_id)

    def interrupt(self, reason: str) -> list[str]:
        """Mark this run's unfinished phases interrupted (SIGINT/SIGTERM); returns their names."""
        with self.conn.cursor() as cur:
            return interrupt(cur, self.run_id, reason)

    def start(self, phase: str) -> int:
        with self.conn.cursor() as cur:
            return start(cur, self.run_id, phase)

    def progress(self, row_id: int, pages_done: int, pages_total: int | None, rows: int,
                 force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < self.PROGRESS_INTERVAL:
            return
        self._last_progress = now
        with self.conn.cursor() as cur:
            progress(cur, row_id, pages_done, pages_total, rows)

    def finish(self, row_id: int, out: PhaseOutcome) -> None:
        with self.conn.cursor() as cur:
            finish(cur, row_id, out.status, out.fetched, out.inserted, out.updated, out.deleted,
                   out.skipped, out.api_calls, out.error)

    def record_unchanged(self, phase: str, status: str, calls: int, note: str) -> None:
        with self.conn.cursor() as cur:
            record_unchanged(cur, self.run_id, phase, status, calls, note)

    def close(self) -> None:
        self.conn.close()
