"""`netops.api_calls`: what a call record is, the recorder every command gives its API client,
and the reads of the table the pipeline needs.

The API client and the token manager describe every request as a `CallRecord` and hand it to the
`Recorder` they were given, never knowing where it goes; the record is declared here, below api/,
because this module stores it. `NullRecorder` keeps nothing (one-off calls with no database).

Why its own connection: the records are written on an autocommit connection of their own, so
they are kept even when the data transaction of the run rolls back (a failed phase's calls
still count against the budget, in alerts and in metrics). Why buffered: one INSERT per 50
records or 5 s, not one round trip per call, yet status, alerts and other processes see the
calls of a long run while it is still going.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class CallRecord:
    """One HTTP request to the API: when (epoch s), for which job, what it answered."""

    at: float
    component: str
    method: str
    endpoint: str
    status: int | None
    duration_ms: int
    attempt: int
    secondly_remaining: int | None
    hourly_remaining: int | None
    error: str | None
    key_label: str | None = None


class Recorder(Protocol):
    """Where call records go: `add` may buffer, `flush` makes them visible, `close` ends it."""

    def add(self, rec: CallRecord) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class NullRecorder:
    """Keeps nothing: a client without a database (unit tests, one-off calls)."""

    def add(self, rec: CallRecord) -> None:
        """Dropped: there is nowhere to keep it."""

    def flush(self) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """Nothing to close."""


class CallRecorder:
    """Buffers call records and writes them to `netops.api_calls` (dsn None: keeps nothing)."""

    #: Flush at least this often, so status, alerts and other processes' hour windows see calls
    #: while a long run is still going (not only when it ends).
    FLUSH_EVERY_SECONDS = 5.0
    FLUSH_EVERY_RECORDS = 50

    def __init__(self, dsn: str | None) -> None:
        self.dsn = dsn
        self.records: list[CallRecord] = []
        self._lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._conn: Any = None
        self._last_flush = time.monotonic()

    def add(self, rec: CallRecord) -> None:
        with self._lock:
            self.records.append(rec)
            due = (len(self.records) >= self.FLUSH_EVERY_RECORDS
                   or time.monotonic() - self._last_flush >= self.FLUSH_EVERY_SECONDS)
        if due and self.dsn:
            self.flush()

    def flush(self) -> None:
        if not self.dsn:
            return
        with self._lock:
            pending, self.records = self.records, []
            self._last_flush = time.monotonic()
        if not pending:
            return
        from psycopg2.extras import execute_values

        with self._db_lock, self._connection().cursor() as cur:
            execute_values(
                cur,
                "INSERT INTO netops.api_calls (at, component, method, endpoint, status, duration_ms, "
                "attempt, secondly_remaining, hourly_remaining, error, key_label) VALUES %s",
                [
                    (r.at, r.component, r.method, r.endpoint, r.status, r.duration_ms, r.attempt,
                     r.secondly_remaining, r.hourly_remaining, r.error, r.key_label)
                    for r in pending
                ],
                template="(to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            )

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            from netops.db import connect

            self._conn = connect(self.dsn or "", autocommit=True, application_name="netops-calls")
        return self._conn

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()


def calls_last_hour(cur: Any, component: str | None = None) -> int:
    """Calls recorded in the last hour, by every netops process or by one component's (the
    pipeline's reads of `netops.api_calls` live here too: one module per bookkeeping table)."""
    if component is None:
        cur.execute("SELECT count(*) FROM netops.api_calls WHERE at > now() - interval '1 hour'")
    else:
        cur.execute("SELECT count(*) FROM netops.api_calls WHERE component = %s "
                    "AND at > now() - interval '1 hour'", (component,))
    return int(cur.fetchone()[0])


def prune_api_calls(cur: Any, keep_days: int, batch: int) -> int:
    """Delete at most `batch` call rows older than `keep_days`, oldest first; return how many.
    Bounded so a first prune of a long-lived box catches up over a few runs, not one long delete."""
    cur.execute(
        "DELETE FROM netops.api_calls WHERE id IN (SELECT id FROM netops.api_calls "
        "WHERE at < now() - make_interval(days => %s) ORDER BY at LIMIT %s)", (keep_days, batch))
    return int(cur.rowcount)


def code_sources(cur: Any, status: int, window_seconds: int = 3600) -> list[tuple[str, str, str, int, float]]:
    """Who drew one HTTP code in the window: (endpoint, key label or '', component, calls, epoch of
    the first), most calls first; what an alert about that code names, and when its first event was."""
    cur.execute(
        "SELECT endpoint, coalesce(key_label, ''), component, count(*), extract(epoch FROM min(at)) "
        "FROM netops.api_calls WHERE status = %s AND at > now() - make_interval(secs => %s) "
        "GROUP BY 1, 2, 3 ORDER BY 4 DESC, 5 LIMIT 10", (status, window_seconds))
    return [(e, k, c, int(n), float(first)) for e, k, c, n, first in cur.fetchall()]
