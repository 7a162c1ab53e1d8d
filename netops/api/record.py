"""What the API client reports about each call, and to whom (issue 15: layers as the design says).

The client and the token manager describe every request they make as a `CallRecord` and hand it
to the `Recorder` they were given; they never know where it goes. The one recorder the commands
use writes `netops.api_calls` (netops/db/api_calls.py, with the SQL); `NullRecorder` keeps
nothing (one-off calls with no database). Kept apart from client.py because auth.py reports
its token POSTs the same way and client.py imports auth.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
