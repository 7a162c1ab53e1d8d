"""What the backlog's bookkeeping says about each resource's freshness and change rate (issue 23):
the reads of `netops plan` and of the monitor's freshness fact. All SQL of that concept is here.

"End of the last fully applied window": a detect window's work is queued when its mark moves
(`backlog_marks.high_water`), and applied when the items it queued are loaded. So the point up to
which a resource is applied is its mark, held back to the oldest change still waiting in the queue
(a pending or processing item's `source_updated_at`). Failed items do not hold it back: they are
their own alert (backlog_failed), and would otherwise freeze the figure until someone retried them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def applied_ends(cur: Any) -> dict[str, datetime | None]:
    """resource -> the end of its last fully applied window (None: never detected)."""
    cur.execute(
        """
        SELECT m.resource,
               CASE WHEN w.oldest IS NULL THEN m.high_water ELSE LEAST(m.high_water, w.oldest) END
        FROM netops.backlog_marks m
        LEFT JOIN (SELECT resource, min(source_updated_at) AS oldest FROM netops.backlog_items
                   WHERE state IN ('pending', 'processing') GROUP BY resource) w USING (resource)
        """)
    return {r: end for r, end in cur.fetchall()}


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
