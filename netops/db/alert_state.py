"""Alert state rows in `netops.alert_state` (migration 003): one row per rule, read and written
by `netops alerts check` inside its transaction, under the ALERTS advisory lock (netops/db/locks.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from netops.db import locks
from netops.db.monitor_facts import relation_exists


@dataclass
class Stored:
    name: str
    state: str = "ok"
    since: datetime | None = None
    notified_state: str | None = None
    notify_error: str | None = None


def lock_if_present(cur: Any) -> bool:
    """Take the ALERTS lock for this transaction; False (no lock) when the table is absent."""
    if not relation_exists(cur, "netops.alert_state"):
        return False
    locks.xact_lock(cur, locks.ALERTS)
    return True


class DbStore:
    """Alert state rows in netops.alert_state, within the caller's locked transaction."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def load(self, name: str) -> Stored:
        self.cur.execute("SELECT state, since, notified_state, notify_error FROM netops.alert_state "
                         "WHERE name = %s FOR UPDATE", (name,))
        r = self.cur.fetchone()
        return Stored(name, *r) if r else Stored(name)

    def save(self, s: Stored, value: float | None, threshold: float, message: str) -> None:
        self.cur.execute(
            """INSERT INTO netops.alert_state (name, state, value, threshold, message, since, last_checked_at,
                                               notified_state, notified_at, notify_error)
               VALUES (%(name)s, %(state)s, %(value)s, %(threshold)s, %(message)s, coalesce(%(since)s, now()), now(),
                       %(notified_state)s, CASE WHEN %(notified_state)s IS NOT NULL THEN now() END, %(notify_error)s)
               ON CONFLICT (name) DO UPDATE SET
                   state = EXCLUDED.state, value = EXCLUDED.value, threshold = EXCLUDED.threshold,
                   message = EXCLUDED.message, since = EXCLUDED.since, last_checked_at = now(),
                   notified_at = CASE WHEN EXCLUDED.notified_state IS DISTINCT FROM alert_state.notified_state
                                      THEN now() ELSE alert_state.notified_at END,
                   notified_state = EXCLUDED.notified_state, notify_error = EXCLUDED.notify_error""",
            {"name": s.name, "state": s.state, "value": None if value in (None, float("inf")) else value,
             "threshold": threshold, "message": message, "since": s.since,
             "notified_state": s.notified_state, "notify_error": s.notify_error},
        )
