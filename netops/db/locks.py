"""Every PostgreSQL advisory-lock key netops takes, and the statements that take them.

One namespace (4242_xxxx) so no two jobs pick the same number by accident, and so `pg_locks` can
be read by anyone who knows this table: a session-level lock belongs to a live process, and
PostgreSQL drops it with the session when the process dies.
"""

from __future__ import annotations

from typing import Any

#: migrations: session-level for a whole `netops db migrate` (or restore); writers take it shared,
#: transaction-level, while they check the schema, so they wait for a migration in progress
MIGRATE = 4242_0001
#: a stable sync: session-level, held for the whole run; a second sync exits at once (code 75)
SYNC = 4242_0002
#: `netops alerts check`: transaction-level, so two concurrent checks cannot both notify
ALERTS = 4242_0004


def xact_lock(cur: Any, key: int) -> None:
    """Wait for `key` until the transaction of `cur` ends."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


def xact_lock_shared(cur: Any, key: int) -> None:
    """Wait until nobody holds `key` exclusively; hold it shared until the transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (key,))


def session_lock(cur: Any, key: int) -> None:
    """Wait for `key`, then hold it until the session of `cur` ends (or it is unlocked)."""
    cur.execute("SELECT pg_advisory_lock(%s)", (key,))


def try_session_lock(cur: Any, key: int) -> bool:
    """Take `key` for the session of `cur` if free; False when another session holds it."""
    cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
    return bool(cur.fetchone()[0])


def session_lock_held(cur: Any, key: int) -> bool:
    """Whether any live session of this database holds the session-level lock `key` now."""
    cur.execute(
        """
        SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database
                        WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()
                          AND ((l.classid::bigint << 32) | l.objid::bigint) = %s AND l.objsubid = 1)
        """,
        (key,),
    )
    return bool(cur.fetchone()[0])
