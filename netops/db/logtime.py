"""Reads of `logtime_daily` (migration 017: a view over locations, days in each campus's own time
zone, an open session counted up to now): what `netops sync verify-logtime` compares with the
API's `/v2/users/:id/locations_stats`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any


def sample_users(cur: Any, n: int, campus_ids: Sequence[int]) -> list[int]:
    """Up to `n` people with sessions at `campus_ids` (any campus when empty), picked at random."""
    cur.execute("SELECT user_id FROM (SELECT DISTINCT user_id FROM locations WHERE user_id IS NOT NULL "
                "AND (cardinality(%s::int[]) = 0 OR campus_id = ANY(%s::int[]))) u ORDER BY random() LIMIT %s",
                (list(campus_ids), list(campus_ids), n))
    return [int(r[0]) for r in cur.fetchall()]


def daily(cur: Any, user_id: int, first: date, last: date) -> dict[date, float]:
    """A person's seconds per local day in [first, last], summed over campuses."""
    cur.execute("SELECT day, sum(seconds) FROM logtime_daily WHERE user_id = %s AND day BETWEEN %s AND %s "
                "GROUP BY day", (user_id, first, last))
    return {r[0]: float(r[1]) for r in cur.fetchall()}
