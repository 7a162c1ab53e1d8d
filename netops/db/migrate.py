"""Versioned schema migrations: `netops/db/migrations/NNN_name.sql`, applied once each, in order.

Each file runs in its own transaction together with its row in `netops.schema_migrations`, so a
failing migration leaves nothing half-applied. `migrate` holds the MIGRATE advisory lock for the
whole run (session level, so two `netops db migrate` runs — two hosts on one database — go one
after the other); writers check the schema with `require_schema`, which waits on that lock in
shared mode, so a cron job started mid-deploy waits for the migrations and never sees half of them.

Only `netops db migrate` (and the embedded server on its first start, db/server.py) creates the
schema: a writer pointed at a database without one refuses (`require_schema`), so one typo in
NETOPS_DSN cannot fill somebody else's database.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from pathlib import Path

from netops.db import connect, locks
from netops.errors import DatabaseError
from netops.log import get_logger

_NAME_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

#: Run after every migration, in its transaction: `CREATE TABLE delta_x (LIKE x)` copies NOT NULL,
#: but a staging twin must accept a NULL key so the loader can count and drop it. This is the one
#: copy the code runs, and the one that keeps every staging twin matching the catalog
#: (tests/integration/test_catalog.py checks it); migration 001 carries the same block as applied
#: history, which never runs again, so new migrations add `delta_x (LIKE x)` and nothing more.
RELAX_STAGING = r"""
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.table_name, c.column_name FROM information_schema.columns c
             WHERE c.table_schema = 'public' AND c.table_name LIKE 'delta\_%' AND c.is_nullable = 'NO'
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP NOT NULL', r.table_name, r.column_name);
    END LOOP;
END $$;
"""


def available() -> list[tuple[str, str, str]]:
    """(version, name, sql) for every migration shipped with the package, sorted by version."""
    out = []
    for entry in resources.files("netops.db").joinpath("migrations").iterdir():
        m = _NAME_RE.match(entry.name)
        if m:
            out.append((m.group(1), m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(out)


def applied_versions(dsn: str) -> list[str]:
    conn = connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('netops.schema_migrations')")
            if cur.fetchone()[0] is None:
                return []
            cur.execute("SELECT version FROM netops.schema_migrations ORDER BY version")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def code_version() -> str:
    """The newest schema version this code knows (the last shipped migration)."""
    return available()[-1][0]


def pending(dsn: str) -> list[str]:
    """`NNN_name` of every shipped migration not applied to `dsn` yet, in order."""
    done = set(applied_versions(dsn))
    return [f"{v}_{n}" for v, n, _ in available() if v not in done]


def schema_problem(applied: list[str]) -> str | None:
    """Why a writer must not touch a database whose schema_migrations holds `applied`, or None.

    Versions beyond the code's mean older code on a newer schema (a downgrade): refused, since
    the code would write rows the newer schema reads differently. Versions missing mean the
    upgrade's `netops db migrate` has not run: refused too, rather than migrating from a cron job
    (the deploy migrates, with the jobs waiting on the MIGRATE lock).
    """
    known = code_version()
    if not applied:
        return ("the database NETOPS_DSN names has no netops schema (a wrong database?); check NETOPS_DSN, "
                "or create the schema with `netops db migrate`")
    if max(applied) > known:
        return (f"the database schema is version {max(applied)}, newer than this code's {known}: "
                "run the netops release that migrated it (downgrades are refused)")
    missing = [v for v, _, _ in available() if v not in set(applied)]
    if missing:
        return (f"the database schema is version {max(applied)}, older than this code's {known}: "
                "run `netops db migrate` (the deploy does)")
    return None


def require_schema(dsn: str) -> None:
    """Refuse (DatabaseError, one line) unless the schema is exactly the one this code expects.

    Waits for a running `netops db migrate` first (MIGRATE, shared), so a job started while the
    deploy migrates reads the finished schema.
    """
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            locks.xact_lock_shared(cur, locks.MIGRATE)
            cur.execute("SELECT to_regclass('netops.schema_migrations')")
            applied: list[str] = []
            if cur.fetchone()[0] is not None:
                cur.execute("SELECT version FROM netops.schema_migrations ORDER BY version")
                applied = [r[0] for r in cur.fetchall()]
    finally:
        conn.close()
    problem = schema_problem(applied)
    if problem:
        raise DatabaseError(problem)


def migrate(dsn: str, log_dir: Path | str) -> list[str]:
    """Apply pending migrations; return the `NNN_name` of each one applied (empty when up to date).

    The `init_db_<stamp>.log` file is only created when there is something to apply, so the
    routine check every sync makes does not leave a log file per run.
    """
    done = set(applied_versions(dsn))
    todo = [m for m in available() if m[0] not in done]
    if not todo:
        return []
    log = get_logger("init_db", log_dir)
    conn = connect(dsn)
    applied: list[str] = []
    try:
        with conn.cursor() as cur:
            locks.session_lock(cur, locks.MIGRATE)  # writers wait on it (require_schema)
        conn.commit()
        with conn, conn.cursor() as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS netops")
            cur.execute(
                """CREATE TABLE IF NOT EXISTS netops.schema_migrations (
                       version text PRIMARY KEY, name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
        for version, name, sql in todo:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT 1 FROM netops.schema_migrations WHERE version = %s", (version,))
                if cur.fetchone():
                    continue
                started = time.monotonic()
                log.info(f"Applying migration {version}_{name}")
                try:
                    cur.execute(sql)
                except Exception as exc:
                    log.error(f"Migration {version}_{name} failed: {exc}".strip())
                    raise DatabaseError(
                        f"migration {version}_{name} failed: {str(exc).strip().splitlines()[0]}; "
                        "nothing of it was applied — fix the database or the migration and rerun"
                    ) from None
                cur.execute(RELAX_STAGING)
                cur.execute(
                    "INSERT INTO netops.schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                )
                applied.append(f"{version}_{name}")
                log.info(f"Applied migration {version}_{name} in {time.monotonic() - started:.2f}s")
    finally:
        conn.close()  # ends the session: PostgreSQL releases the MIGRATE lock with it
    return applied
