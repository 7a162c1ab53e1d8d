"""The one retry policy every API request follows (GET pages and the token POST alike).

Kept apart from client.py and auth.py because both use it and client.py imports auth.py.
"""

from __future__ import annotations

import random
from typing import Any


def backoff_seconds(attempt: int) -> float:
    """Pause before retry number `attempt` (1-based) after a 5xx, timeout, reset or garbled
    body: 0.5 s doubling, capped at 30 s, ±20 % jitter so workers sharing a key spread out."""
    return min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)


def retry_after_pause(headers: Any) -> tuple[float, int | None]:
    """(pause, Retry-After as sent) after a 429: the header's seconds (1 when absent or
    unreadable) plus a little jitter, as docs/api.md asks of clients sharing a key."""
    retry_after = int_header(headers, "Retry-After") if headers is not None else None
    return (retry_after if retry_after is not None else 1) + random.uniform(0.05, 0.25), retry_after


def int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
