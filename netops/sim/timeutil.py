"""Timestamps as the 42 API writes them, and back.

The simulator stores every timestamp as integer epoch milliseconds: comparing, sorting and
range-filtering integers is cheap and exact, whereas the API's strings mix `Z` and `+01:00`
offsets and so do not sort lexically. Strings are produced only when a row is rendered.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

#: The data set's "now": every generated timestamp lies before it (2025-12-11T12:00:00Z).
BASE_MS = 1765454400000

_ISO = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?\s*$"
)


def now_ms() -> int:
    """Wall-clock now in epoch milliseconds (churn and `touch` move `updated_at` here)."""
    return int(time.time() * 1000)


def fmt(ms: int | None, offset_minutes: int = 0) -> str | None:
    """Render epoch ms as ISO 8601 with milliseconds: `...Z` or with an explicit `+HH:MM` offset.

    The instant is the same either way; the offset only changes how it is written, exactly like
    the real API's mixed answers.
    """
    if ms is None:
        return None
    secs, milli = divmod(ms + offset_minutes * 60_000, 1000)
    t = time.gmtime(secs)
    if offset_minutes == 0:
        suffix = "Z"
    else:
        sign = "+" if offset_minutes > 0 else "-"
        hh, mm = divmod(abs(offset_minutes), 60)
        suffix = f"{sign}{hh:02d}:{mm:02d}"
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{milli:03d}{suffix}"
    )


def parse(value: str) -> int:
    """Parse an ISO 8601 timestamp (date only, `Z`, offsets, any fraction) into epoch ms.

    Naive values are taken as UTC. Raises ValueError on anything else, which the server turns
    into a 400 like the real API.
    """
    m = _ISO.match(value)
    if not m:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    year, month, day, hh, mi, ss, frac, tz = m.groups()
    dt = datetime(int(year), int(month), int(day), int(hh or 0), int(mi or 0), int(ss or 0),
                  tzinfo=timezone.utc)
    ms = int(dt.timestamp()) * 1000
    if frac:
        ms += int((frac + "000")[:3])
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        off = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
        ms -= sign * off * 60_000
    return ms
