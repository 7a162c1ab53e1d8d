"""Database: embedded server (server.py), migrations (migrate.py), loader (loader.py)."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from netops.errors import DatabaseError

# The mirror lives in `public`, bookkeeping in `netops` (always schema-qualified). PostgreSQL's
# default search_path starts with "$user": for a role named `netops` the mirror tables would be
# created in, and read from, the bookkeeping schema. Pin it on every connection.
SEARCH_PATH = "-c search_path=public"


def connect(dsn: str, autocommit: bool = False, application_name: str = "netops") -> psycopg2.extensions.connection:
    """Open a connection, turning connection failures into one actionable line.

    The DSN itself is never echoed (it may carry a password); only its host part is named.
    The search_path is pinned to `public` (see SEARCH_PATH).
    """
    try:
        conn = psycopg2.connect(dsn, application_name=application_name, connect_timeout=10,
                                options=SEARCH_PATH)
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise DatabaseError(
            f"cannot connect to PostgreSQL ({first}); check NETOPS_DSN, or run `netops db up` "
            "for the embedded server"
        ) from None
    conn.autocommit = autocommit
    return conn
