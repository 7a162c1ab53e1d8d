"""Locations (sessions at a seat) of one campus: a begin_at window with a lookback, then every open
session re-checked until it closes or is gone (docs/backlog.md, "Campus resources").

Why this shape: a session has no `updated_at`; it is created when someone logs in (begin_at) and
changes once, when it closes (end_at), sometimes never.
- The window is `range[begin_at]=<mark − lookback>,<now − settle>` (first run: the backfill
  horizon, NETOPS_CAMPUS_BACKFILL_DAYS). The lookback (NETOPS_LOCATIONS_LOOKBACK_HOURS, 72 h as
  the tools use) re-reads recent sessions, catching a close that happened after the last read.
  Sessions the window does not return but the mirror holds with a begin_at inside it are gone
  from the API and deleted (within NETOPS_MAX_PRUNE_RATIO, as every prune).
- Then `filter[active]=true`: the campus's open sessions now, loaded as they are.
- Every session the mirror still holds open that the active listing did not return has closed or
  is gone, whatever its age: it is fetched by id (`filter[id]`, 100 a call). Returned, it is
  loaded (closed, usually); not returned, it is **gone** and deleted. So no open session is left
  behind by the window, however old.
- The campus's mark moves to the window's end in the transaction of the last step.
Sessions of a person past data_erasure_date (every session carries the whole user object) are
not loaded, and that person's mirrored sessions and evaluations are deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from netops.config import Settings
from netops.db import campus as campus_db
from netops.db import marks
from netops.db.loader import PRUNE_GUARD_MIN_ROWS
from netops.errors import SyncError
from netops.mapping import parse_ts
from netops.pipeline.backlog.campus import (
    CampusResource,
    CampusResult,
    iso,
    load_rows,
    pages,
    to_row,
    window_end,
)
from netops.pipeline.backlog.resources import PayloadError

BY_ID_CHUNK = 100   # ids per `filter[id]` call (a page's size)


def window_pass(conn: Any, client: Any, settings: Settings, res: CampusResource, campus_id: int,
                settle: timedelta, result: CampusResult) -> None:
    key = marks.scoped(res.name, campus_id)
    with conn, conn.cursor() as cur:
        mark = marks.high_water(cur, key)
    now = datetime.now(timezone.utc)
    until = now - settle
    horizon = now - timedelta(days=settings.campus_backfill_days)
    lo = horizon if mark is None else max(horizon, mark - timedelta(hours=settings.locations_lookback_hours))
    result.since = iso(lo)
    seen: set[int] = set()
    first = None
    if lo < until:
        for page in pages(client, settings, res, campus_id, {"range[begin_at]": f"{iso(lo)},{iso(until)}"}):
            first = first or page
            with conn, conn.cursor() as cur:
                seen |= _apply(cur, res, page.rows, result)
        with conn, conn.cursor() as cur:
            _prune_window(cur, settings, campus_id, lo, until, seen, result)
    active: set[int] = set()
    for page in pages(client, settings, res, campus_id, dict(res.spec.source.open_filter)):  # type: ignore[union-attr]
        with conn, conn.cursor() as cur:
            active |= _apply(cur, res, page.rows, result)
    with conn, conn.cursor() as cur:
        left = [i for i in campus_db.open_session_ids(cur, campus_id) if i not in active]
    _recheck(conn, client, settings, res, campus_id, left, result)
    with conn, conn.cursor() as cur:
        end = window_end(until, first, settle) if lo < until else (mark or until)
        marks.advance(cur, key, end, client.calls, result.applied)
        oldest = campus_db.oldest_open_session(cur, [campus_id])
    result.mark = iso(max(end, mark) if mark else end)
    if oldest is not None:
        hours = (now - oldest[1]).total_seconds() / 3600
        result.notes.append(f"oldest open session {oldest[0]} open {hours:.1f} h")


def _recheck(conn: Any, client: Any, settings: Settings, res: CampusResource, campus_id: int, ids: list[int],
             result: CampusResult) -> None:
    """Open in the mirror, not open in the API: fetch each by id; what does not come back is gone."""
    result.reopened += len(ids)
    for i in range(0, len(ids), BY_ID_CHUNK):
        chunk = ids[i:i + BY_ID_CHUNK]
        back: set[int] = set()
        for page in pages(client, settings, res, campus_id, {"filter[id]": ",".join(map(str, chunk))}):
            with conn, conn.cursor() as cur:
                back |= _apply(cur, res, page.rows, result)
        gone = [x for x in chunk if x not in back]
        if gone:
            with conn, conn.cursor() as cur:
                result.deleted += campus_db.delete_locations(cur, gone)


def _prune_window(cur: Any, settings: Settings, campus_id: int, lo: datetime, hi: datetime, seen: set[int],
                  result: CampusResult) -> None:
    """Delete the campus's sessions begun inside the window that the window no longer returned."""
    held = campus_db.window_ids(cur, campus_id, lo, hi)
    gone = [i for i in held if i not in seen]
    if len(held) >= PRUNE_GUARD_MIN_ROWS and len(gone) > settings.max_prune_ratio * len(held):
        raise SyncError(f"locations of campus {campus_id}: the API no longer returns {len(gone)} of {len(held)} "
                        f"sessions begun since {iso(lo)} (> {settings.max_prune_ratio:.0%}); refusing to delete "
                        "that much — check the API, or rerun with NETOPS_MAX_PRUNE_RATIO=1 if they are really gone")
    result.deleted += campus_db.delete_locations(cur, gone)


def _apply(cur: Any, res: CampusResource, objs: Iterable[Any], result: CampusResult) -> set[int]:
    """Load one page of sessions; returns the ids the API returned (erased people's included, so
    they count as present, not gone: their rows are deleted by the erasure instead)."""
    rows, ids, erased = [], set(), set()
    now = datetime.now(timezone.utc)
    for obj in objs:
        result.seen += 1
        try:
            row = to_row(res.spec, obj)
        except PayloadError:
            result.invalid += 1
            continue
        ids.add(row[0])
        person = obj.get("user") if isinstance(obj, Mapping) else None
        if _past_erasure(person, now):
            erased.add(row[res.spec.column_names.index("user_id")])
            continue
        rows.append(row)
    uid = res.spec.column_names.index("user_id")
    erased |= campus_db.erased_among(cur, sorted({r[uid] for r in rows} - {None}))
    erased.discard(None)
    if erased:
        result.deleted += sum(campus_db.erase_people(cur, sorted(erased)).values())
        result.erased += len(erased)
        rows = [r for r in rows if r[uid] not in erased]
    result.applied += load_rows(cur, res.spec, rows)
    return ids


def _past_erasure(person: Any, now: datetime) -> bool:
    """A session's user object past its data_erasure_date (docs/backlog.md, "Erasure")."""
    stamp = person.get("data_erasure_date") if isinstance(person, Mapping) else None
    if not isinstance(stamp, str):
        return False
    try:
        return parse_ts(stamp) <= now
    except ValueError:
        return False
