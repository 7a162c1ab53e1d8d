"""SQL of the campus-scoped tables (issue 23: locations, scale_teams, teams, teams_users, events,
exams) outside the loader: the open sessions to re-check, the window prune, a team's members
replaced, and the rows of erased people. Loading itself is netops/db/loader.py.

Every reference to a person in these tables is soft (no FK: sessions and evaluations name pool
candidates, staff, other cursus), so nothing cascades from `users`: erasing a person's rows is
done here, explicitly, in the transaction that erases the user (docs/backlog.md, "Erasure").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg2 import sql


def open_session_ids(cur: Any, campus_id: int) -> list[int]:
    """Ids of the campus's mirrored sessions still open (end_at NULL), by id."""
    cur.execute("SELECT id FROM locations WHERE campus_id = %s AND end_at IS NULL ORDER BY id", (campus_id,))
    return [int(r[0]) for r in cur.fetchall()]


def window_ids(cur: Any, campus_id: int, lo: datetime, hi: datetime) -> list[int]:
    """Ids of the campus's mirrored sessions begun in [lo, hi]: what a window read must return."""
    cur.execute("SELECT id FROM locations WHERE campus_id = %s AND begin_at >= %s AND begin_at <= %s",
                (campus_id, lo, hi))
    return [int(r[0]) for r in cur.fetchall()]


def delete_locations(cur: Any, ids: Sequence[int]) -> int:
    """Delete sessions by id (gone from the API); returns how many went."""
    if not ids:
        return 0
    cur.execute("DELETE FROM locations WHERE id = ANY(%s)", (list(ids),))
    return int(cur.rowcount)


def replace_team_members(cur: Any, team_ids: Sequence[int]) -> None:
    """Drop the members of `team_ids` before their current list is loaded: a team's `users` is
    its whole membership, keyed by position, so a member who left must not linger at a position."""
    if team_ids:
        cur.execute("DELETE FROM teams_users WHERE team_id = ANY(%s)", (list(team_ids),))


def present_ids(cur: Any, table: str, ids: Sequence[int]) -> set[int]:
    """Which of `ids` are rows of `table` (a campus-scoped parent: teams)."""
    if not ids:
        return set()
    cur.execute(sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table)), (list(ids),))
    return {int(r[0]) for r in cur.fetchall()}


def erased_among(cur: Any, user_ids: Sequence[int]) -> set[int]:
    """Which of `user_ids` are erased people: mirrored users past their data_erasure_date (not
    purged yet), or people the backlog erased (`netops.erased_people`, 017) who are not mirrored
    users again since."""
    if not user_ids:
        return set()
    ids = list(user_ids)
    cur.execute("SELECT id FROM users WHERE id = ANY(%s) AND data_erasure_date <= now() "
                "UNION SELECT e.user_id FROM netops.erased_people e WHERE e.user_id = ANY(%s) "
                "AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e.user_id)", (ids, ids))
    return {int(r[0]) for r in cur.fetchall()}


def erase_people(cur: Any, user_ids: Sequence[int]) -> dict[str, int]:
    """Delete every session and evaluation of erased people, in the caller's transaction (the one
    deleting the users): their sessions, the evaluations they corrected or were evaluated in, and
    their team memberships; and remember them (`netops.erased_people`) so a later answer naming
    them is not loaded. Returns the counts per table."""
    ids = sorted({int(i) for i in user_ids})
    if not ids:
        return {}
    out: dict[str, int] = {}
    cur.execute("INSERT INTO netops.erased_people (user_id) SELECT unnest(%s::int[]) ON CONFLICT DO NOTHING", (ids,))
    cur.execute("DELETE FROM locations WHERE user_id = ANY(%s)", (ids,))
    out["locations"] = int(cur.rowcount)
    cur.execute("DELETE FROM scale_teams WHERE corrector_id = ANY(%s) OR team_id IN "
                "(SELECT team_id FROM teams_users WHERE user_id = ANY(%s))", (ids, ids))
    out["scale_teams"] = int(cur.rowcount)
    cur.execute("DELETE FROM teams_users WHERE user_id = ANY(%s)", (ids,))
    out["teams_users"] = int(cur.rowcount)
    return out


def open_sessions(cur: Any, campus_ids: Sequence[int]) -> dict[int, tuple[int, datetime | None]]:
    """Per campus given: (sessions still open in the mirror, the oldest one's begin_at; None when
    none is open). What status and metrics watch: the API sometimes never closes a session, and
    detect re-checks every open one on every pass. {} before migration 014."""
    cur.execute("SELECT to_regclass('locations') IS NOT NULL")
    if not cur.fetchone()[0]:
        return {}
    cur.execute("SELECT campus_id, count(*), min(begin_at) FROM locations WHERE end_at IS NULL "
                "AND campus_id = ANY(%s::int[]) GROUP BY campus_id", (list(campus_ids),))
    got = {int(c): (int(n), oldest) for c, n, oldest in cur.fetchall()}
    return {c: got.get(c, (0, None)) for c in campus_ids}


def oldest_open_session(cur: Any, campus_ids: Sequence[int] | None = None) -> tuple[int, datetime] | None:
    """(id, begin_at) of the oldest session still open in the mirror (of `campus_ids`, or any):
    the fact behind "a session open for N hours" (the API sometimes never closes one)."""
    cur.execute("SELECT id, begin_at FROM locations WHERE end_at IS NULL "
                "AND (%s::int[] IS NULL OR campus_id = ANY(%s::int[])) ORDER BY begin_at LIMIT 1",
                (list(campus_ids) if campus_ids else None, list(campus_ids) if campus_ids else None))
    row = cur.fetchone()
    return (int(row[0]), row[1]) if row else None
