"""Per-resource marks of the backlog (`netops.backlog_marks`): the detector's high-water mark and the
reconciler's resumable cursor. All SQL on that table is here.

Both are moved in the caller's transaction — the one that queued the window's last page, or
loaded the reconciled interval — so a crash never leaves a mark ahead of the work it stands for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def high_water(cur: Any, resource: str) -> datetime | None:
    """The greatest updated_at whose work is safely queued (None: never detected)."""
    cur.execute("SELECT high_water FROM netops.backlog_marks WHERE resource = %s", (resource,))
    row = cur.fetchone()
    return row[0] if row else None


def advance(cur: Any, resource: str, end: datetime, calls: int, rows: int) -> None:
    """Move the mark forward only (GREATEST), recording the detect run's cost."""
    cur.execute(
        """
        INSERT INTO netops.backlog_marks AS m (resource, high_water, updated_at, last_detect_at,
                                               last_detect_calls, last_detect_rows)
        VALUES (%s, %s, now(), now(), %s, %s)
        ON CONFLICT (resource) DO UPDATE SET
            high_water = GREATEST(m.high_water, EXCLUDED.high_water),
            updated_at = now(), last_detect_at = now(), detect_started_at = NULL,
            last_detect_calls = EXCLUDED.last_detect_calls, last_detect_rows = EXCLUDED.last_detect_rows
        """,
        (resource, end, calls, rows),
    )


def detect_begin(cur: Any, resource: str) -> None:
    """A detect pass over `resource` starts walking (migration 013): workers asking for one of its
    rows by id let the pass deliver it first (queue.PARENT_FETCH_DELAY). `advance` ends it."""
    cur.execute("INSERT INTO netops.backlog_marks AS m (resource, detect_started_at) VALUES (%s, now()) "
                "ON CONFLICT (resource) DO UPDATE SET detect_started_at = now()", (resource,))


def detect_end(cur: Any, resource: str) -> None:
    """The pass stopped without moving the mark (an error): nothing is on its way any more."""
    cur.execute("UPDATE netops.backlog_marks SET detect_started_at = NULL WHERE resource = %s", (resource,))


def detecting(cur: Any, resources: list[str]) -> set[str]:
    """Which of `resources` a detect pass is walking right now."""
    cur.execute("SELECT resource FROM netops.backlog_marks WHERE resource = ANY(%s) "
                "AND detect_started_at IS NOT NULL", (list(resources),))
    return {r for (r,) in cur.fetchall()}


def reconcile_cursor(cur: Any, resource: str) -> int | None:
    """The last id reconciled in the current pass (None: the next pass starts at 0)."""
    cur.execute("SELECT reconcile_cursor FROM netops.backlog_marks WHERE resource = %s", (resource,))
    row = cur.fetchone()
    return row[0] if row else None


def reconcile_begin(cur: Any, resource: str, restart: bool) -> int | None:
    """Where this reconcile run starts: the kept cursor, or None for a new pass (whose start time is
    recorded then); `restart` drops the cursor first."""
    cur.execute("INSERT INTO netops.backlog_marks (resource) VALUES (%s) ON CONFLICT DO NOTHING", (resource,))
    if restart:
        cur.execute("UPDATE netops.backlog_marks SET reconcile_cursor = NULL WHERE resource = %s", (resource,))
    cursor = reconcile_cursor(cur, resource)
    if cursor is None:
        cur.execute("UPDATE netops.backlog_marks SET reconcile_started_at = now() WHERE resource = %s",
                    (resource,))
    return cursor


def reconcile_step(cur: Any, resource: str, cursor: int | None) -> None:
    """Keep the cursor after an interval, or (None) record the pass as finished."""
    if cursor is None:
        cur.execute("UPDATE netops.backlog_marks SET reconcile_cursor = NULL, reconcile_finished_at = now() "
                    "WHERE resource = %s", (resource,))
    else:
        cur.execute("UPDATE netops.backlog_marks SET reconcile_cursor = %s WHERE resource = %s", (cursor, resource))


def overview(cur: Any) -> dict[str, dict[str, Any]]:
    """Every resource's marks, for `netops backlog status` (timestamps as ISO 8601)."""
    cur.execute(
        "SELECT resource, high_water, last_detect_at, reconcile_cursor, reconcile_finished_at "
        "FROM netops.backlog_marks ORDER BY resource"
    )

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {r[0]: {"high_water": iso(r[1]), "last_detect_at": iso(r[2]), "reconcile_cursor": r[3],
                   "reconcile_finished_at": iso(r[4])} for r in cur.fetchall()}


# ------------------------------------------------------------------ campus-scoped marks (issue 23)
def scoped(resource: str, campus_id: int) -> str:
    """The marks row of one campus's share of a campus-scoped resource (`locations@1`): each
    campus in scope has its own window."""
    return f"{resource}@{campus_id}"


def applied_until(cur: Any, resource: str, campus_ids: list[int] | None = None) -> datetime | None:
    """The end of `resource`'s last FULLY applied window: every change before it is in the mirror
    (freshness = now minus this). None when unknown (never run, or a campus in scope never done).

    Campus-scoped resources (`campus_ids` given): their windows are applied in the transaction that
    moves the mark, so it is the oldest of the campuses' marks. Queued resources: the mark is where
    the queued windows end; while items of the resource are still pending, processing or failed,
    only what is older than the oldest of them is known applied."""
    if campus_ids is not None:
        keys = [scoped(resource, c) for c in campus_ids]
        cur.execute("SELECT count(high_water), min(high_water) FROM netops.backlog_marks WHERE resource = ANY(%s)",
                    (keys,))
        found, oldest = cur.fetchone()
        return oldest if keys and found == len(keys) else None
    cur.execute(
        "SELECT LEAST(m.high_water, (SELECT min(i.source_updated_at) FROM netops.backlog_items i "
        "WHERE i.resource = m.resource AND i.state IN ('pending', 'processing', 'failed'))) "
        "FROM netops.backlog_marks m WHERE m.resource = %s", (resource,))
    row = cur.fetchone()
    return row[0] if row else None
