"""What the backlog's bookkeeping says about each resource's change rate (issue 23): a read of
`netops plan`. (Freshness, the end of the last fully applied window, is netops/db/marks.py
`applied_until`.)"""

from __future__ import annotations

from typing import Any


def changed_per_hour(cur: Any, hours: float) -> dict[str, float]:
    """resource -> rows its detect windows queued per hour, counted by the change's own time
    (`source_updated_at`) over the last `hours` up to its mark: an initial load's rows carry old
    times and do not count as a change rate. Resources without a mark or without items are absent."""
    cur.execute(
        """
        SELECT m.resource, count(i.id),
               extract(epoch FROM m.high_water - GREATEST(now() - make_interval(secs => %s), m.first_at)) / 3600.0
        FROM (SELECT resource, high_water,
                     (SELECT min(enqueued_at) FROM netops.backlog_items b WHERE b.resource = mk.resource) AS first_at
              FROM netops.backlog_marks mk WHERE high_water IS NOT NULL) m
        LEFT JOIN netops.backlog_items i
               ON i.resource = m.resource AND i.reason = 'detect'
              AND i.source_updated_at > GREATEST(now() - make_interval(secs => %s), m.first_at)
              AND i.source_updated_at <= m.high_water
        GROUP BY m.resource, m.high_water, m.first_at
        """, (hours * 3600.0, hours * 3600.0))
    out: dict[str, float] = {}
    for resource, count, span in cur.fetchall():
        if span is not None and float(span) > 0:
            out[resource] = count / float(span)
    return out


def detect_round_trip(cur: Any, hours: float) -> float | None:
    """Mean seconds a detect call took to answer over the last `hours` (None: no such call): a
    keyset walk asks for its next page only once the last one is back, so one long listing
    takes at least its pages × this."""
    cur.execute("SELECT avg(duration_ms) / 1000.0 FROM netops.api_calls WHERE component = 'detect' "
                "AND status = 200 AND at > now() - make_interval(secs => %s)", (hours * 3600.0,))
    row = cur.fetchone()
    return None if row is None or row[0] is None else float(row[0])
