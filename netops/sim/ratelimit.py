"""Per-application request budgets: per second and per hour, both sliding windows.

A sliding one-second window (not a fixed clock second) is what makes a client that paces at
`1000/limit + 25` ms safe and a client that bursts on a second boundary fail - as with the real
API. Rejected requests are not counted: a 429 costs the client time, not budget.

Each application (client id) has its own windows, as on the real API. `counts()` says, per
application, how many requests were let through and how many refused: the shared-budget tests
and benchmarks read it to show every key's budget used and none exceeded.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass
class Decision:
    allowed: bool
    retry_after: int  # whole seconds, >= 1 when not allowed
    headers: dict[str, str]


class RateLimiter:
    """Sliding-window limits per key (the client application). 0 = unlimited."""

    def __init__(self, per_second: int, per_hour: int) -> None:
        self.per_second = per_second
        self.per_hour = per_hour
        self._sec: dict[str, deque[float]] = {}
        self._hour: dict[str, deque[float]] = {}
        self._allowed: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        self._span: list[float] = []   # monotonic moments of the first and the last request since reset()
        self._lock = threading.Lock()

    def configure(self, per_second: int | None = None, per_hour: int | None = None) -> None:
        with self._lock:
            if per_second is not None:
                self.per_second = per_second
            if per_hour is not None:
                self.per_hour = per_hour

    def reset(self) -> None:
        with self._lock:
            self._sec.clear()
            self._hour.clear()
            self._allowed.clear()
            self._refused.clear()
            self._span.clear()

    def arrival_span(self) -> tuple[float, float] | None:
        """(first, last) request moment since reset(), on time.monotonic() — what a benchmark needs
        to tell a client's start-up and tail from its budget-bound middle."""
        with self._lock:
            return (self._span[0], self._span[-1]) if self._span else None

    def counts(self) -> dict[str, dict[str, int]]:
        """{client_id: {"allowed": n, "refused": m}} since the last reset()."""
        with self._lock:
            keys = set(self._allowed) | set(self._refused)
            return {k: {"allowed": self._allowed.get(k, 0), "refused": self._refused.get(k, 0)} for k in sorted(keys)}

    def hit(self, key: str, now: float | None = None) -> Decision:
        """Count one request for `key` if it fits both windows; else say how long to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self._span:
                self._span[1:] = [now]   # [first, latest]
            else:
                self._span.append(now)
            sec = self._sec.setdefault(key, deque())
            hour = self._hour.setdefault(key, deque())
            while sec and sec[0] <= now - 1.0:
                sec.popleft()
            while hour and hour[0] <= now - 3600.0:
                hour.popleft()
            wait = 0.0
            if self.per_second and len(sec) >= self.per_second:
                wait = max(wait, sec[-self.per_second] + 1.0 - now)
            if self.per_hour and len(hour) >= self.per_hour:
                wait = max(wait, hour[-self.per_hour] + 3600.0 - now)
            allowed = wait <= 0
            counter = self._allowed if allowed else self._refused
            counter[key] = counter.get(key, 0) + 1
            if allowed:
                if self.per_second:
                    sec.append(now)
                if self.per_hour:
                    hour.append(now)
            headers = {}
            if self.per_second:
                headers["X-Secondly-RateLimit-Limit"] = str(self.per_second)
                headers["X-Secondly-RateLimit-Remaining"] = str(max(0, self.per_second - len(sec)))
            if self.per_hour:
                headers["X-Hourly-RateLimit-Limit"] = str(self.per_hour)
                headers["X-Hourly-RateLimit-Remaining"] = str(max(0, self.per_hour - len(hour)))
            return Decision(allowed, 0 if allowed else max(1, math.ceil(wait)), headers)
