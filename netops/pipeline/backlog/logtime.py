"""`netops sync verify-logtime`: logtime_daily (derived in PostgreSQL from locations, migration 017)
against the API's own figure, `/v2/users/:id/locations_stats`, for a sample of people — as
`netops sync verify-links` does for campus achievements. Writes nothing.

Which days are compared: those the mirror can fully know — after the backfill horizon's first day
(sessions begun before it are not mirrored) and before the day the locations' last fully applied
window ends in (later days still move). The API's answer maps `"YYYY-MM-DD"` to
`"HH:MM:SS.ffffff"` (the fraction may be shorter) and omits days without time; a day on one side
only counts as a mismatch like a differing one.

Tolerance (`--tolerance`, 60 s a day by default): both sides count the same sessions, so what
differs honestly is rounding — the API's microseconds against PostgreSQL's, and sessions of one
person that overlap (two seats at once), which a source may merge where the other sums. A real
fault (a missed or never-closed session, a day cut in the wrong time zone) is hours, never a minute.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from netops.config import Settings
from netops.errors import SyncError

_DURATION = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})(?:\.(\d+))?\s*$")


def parse_duration(value: Any) -> float:
    """`"HH:MM:SS.ffffff"` (fewer fraction digits allowed, hours may pass 24) -> seconds."""
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"not an HH:MM:SS duration: {value!r:.40}")
    h, mi, s, frac = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + (float(f"0.{frac}") if frac else 0.0)


def parse_stats(obj: Any) -> dict[date, float]:
    """The locations_stats object -> {day: seconds}; a changed payload is a SyncError."""
    if not isinstance(obj, dict):
        raise SyncError(f"verify-logtime: locations_stats is a JSON {type(obj).__name__}, not an object")
    try:
        return {date.fromisoformat(k): parse_duration(v) for k, v in obj.items()}
    except ValueError as exc:
        raise SyncError(f"verify-logtime: locations_stats: {exc}") from None


@dataclass
class LogtimeCheck:
    """What the comparison found: per person, the days that differ beyond the tolerance."""

    users: int = 0
    days_compared: int = 0
    first_day: str | None = None
    last_day: str | None = None
    tolerance: float = 60.0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    seconds: float = 0.0

    @property
    def agree(self) -> bool:
        return not self.mismatches

    def as_dict(self) -> dict[str, Any]:
        return {"agree": self.agree, "users": self.users, "days_compared": self.days_compared,
                "first_day": self.first_day, "last_day": self.last_day, "tolerance_seconds": self.tolerance,
                "mismatches": self.mismatches, "api_calls": self.calls, "seconds": round(self.seconds, 3)}


def compare(mirror: dict[date, float], api: dict[date, float], first: date, last: date,
            tolerance: float) -> list[tuple[date, float | None, float | None]]:
    """(day, mirror seconds, API seconds) for each day in [first, last] differing by more than
    `tolerance` (a day missing on one side is None there)."""
    out = []
    for day in sorted({d for d in (*mirror, *api) if first <= d <= last}):
        a, b = mirror.get(day), api.get(day)
        if abs((a or 0.0) - (b or 0.0)) > tolerance:
            out.append((day, a, b))
    return out


def verify_logtime(settings: Settings, sample: int, tolerance: float) -> LogtimeCheck:
    """Compare logtime_daily with locations_stats for `sample` people of the campuses in scope."""
    from netops.api.client import ApiClient
    from netops.db import connect, logtime, marks
    from netops.db.server import resolve_dsn

    started = time.monotonic()
    dsn = resolve_dsn(settings)
    conn = connect(dsn, application_name="netops-verify-logtime")
    try:
        with conn, conn.cursor() as cur:
            applied = marks.applied_until(cur, "locations", list(settings.campus_ids))
            users = logtime.sample_users(cur, sample, settings.campus_ids)
        if applied is None or not users:
            raise SyncError("verify-logtime: no locations mirrored for NETOPS_CAMPUS_IDS yet — set the campuses, "
                            "then run `netops backlog detect`")
        now = datetime.now(timezone.utc)
        # one day of margin each side: local days run up to 14 h either side of UTC's
        first = (now - timedelta(days=settings.campus_backfill_days)).date() + timedelta(days=2)
        last = applied.astimezone(timezone.utc).date() - timedelta(days=2)
        check = LogtimeCheck(users=len(users), first_day=first.isoformat(), last_day=last.isoformat(),
                             tolerance=tolerance)
        client = ApiClient(settings, dsn=dsn, component="backlog")
        try:
            for uid in users:
                api = parse_stats(client.get_json(f"/v2/users/{uid}/locations_stats", {}))
                with conn, conn.cursor() as cur:
                    mine = logtime.daily(cur, uid, first, last)
                check.days_compared += len({d for d in (*mine, *api) if first <= d <= last})
                check.mismatches += [{"user_id": uid, "day": d.isoformat(), "mirror_seconds": a, "api_seconds": b}
                                     for d, a, b in compare(mine, api, first, last, tolerance)]
        finally:
            check.calls = client.calls
            client.close()
    finally:
        conn.close()
    check.seconds = time.monotonic() - started
    return check
