"""Database: embedded server (server.py), migrations (migrate.py), loader (loader.py)."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

from netops.errors import DatabaseError


def connect(dsn: str, autocommit: bool = False, application_name: str = "netops") -> psycopg2.extensions.connection:
    """Open a connection, turning connection failures into one actionable line.

    The DSN itself is never echoed (it may carry a password); only its host part is named.
    """
    try:
        conn = psycopg2.connect(dsn, application_name=application_name, connect_timeout=10)
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
        raise DatabaseError(
            f"cannot connect to PostgreSQL ({first}); check NETOPS_DSN, or run `netops db up` "
            "for the embedded server"
        ) from None
    conn.autocommit = autocommit
    return conn
