"""Writers never create the netops schema, refuse a newer one (a downgrade) and an older one, and
wait for a migration in progress; `netops db migrate --dry-run` lists what is pending."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import pytest

from netops.db import locks
from netops.db.migrate import available, code_version, require_schema
from netops.errors import DatabaseError
from tests.fixtures.pg import query


def _env(dsn: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "NETOPS_CONFIG": "", "NETOPS_DSN": dsn, "NETOPS_LOG_DIR": str(tmp_path / "logs"),
            "NETOPS_STATE_DIR": str(tmp_path / "state"), "NETOPS_API_URL": "http://127.0.0.1:9",
            "NETOPS_CLIENT_ID": "id", "NETOPS_CLIENT_SECRET": "secret"}


def _netops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netops", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def _objects(dsn: str) -> list[tuple]:
    return query(dsn, """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                         UNION ALL SELECT nspname, '' FROM pg_namespace WHERE nspname = 'netops'""")


def test_a_wrong_database_is_refused_and_nothing_is_created(fresh_db: str, tmp_path: Path) -> None:
    env = _env(fresh_db, tmp_path)
    for args in (("sync", "stable", "--phase", "cursus"), ("backlog", "detect"), ("backlog", "run", "--once")):
        res = _netops(env, *args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and len(lines) == 1, (args, res.stderr)
        assert "NETOPS_DSN" in lines[0] and "netops db migrate" in lines[0] and "no netops schema" in lines[0]
    assert _objects(fresh_db) == []   # no schema, no table, no sync run recorded anywhere


def test_a_newer_schema_is_refused_naming_both_versions(pg_dsn: str, tmp_path: Path) -> None:
    query(pg_dsn, "INSERT INTO netops.schema_migrations (version, name) VALUES ('999', 'from_the_future')")
    env = _env(pg_dsn, tmp_path)
    for args in (("sync", "stable", "--phase", "cursus"), ("backlog", "detect"), ("db", "migrate")):
        res = _netops(env, *args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and len(lines) == 1, (args, res.stderr)
        assert "999" in lines[0] and code_version() in lines[0] and "newer" in lines[0]
    assert query(pg_dsn, "SELECT count(*) FROM netops.sync_runs") == [(0,)]


def test_an_older_schema_is_refused_naming_migrate_and_dry_run_lists_it(pg_dsn: str, tmp_path: Path) -> None:
    last_version, last_name, _ = available()[-1]
    query(pg_dsn, "DELETE FROM netops.schema_migrations WHERE version = %s", (last_version,))
    env = _env(pg_dsn, tmp_path)
    res = _netops(env, "sync", "stable", "--phase", "cursus")
    assert res.returncode != 0 and "older" in res.stderr and "`netops db migrate`" in res.stderr
    res = _netops(env, "db", "migrate", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["pending"] == [f"{last_version}_{last_name}"]
    res = _netops(env, "db", "migrate", "--dry-run")
    assert res.stdout.strip() == f"pending: {last_version}_{last_name}"
    # dry run applied nothing
    assert query(pg_dsn, "SELECT count(*) FROM netops.schema_migrations WHERE version = %s", (last_version,)) == [(0,)]


def test_dry_run_on_an_empty_database_lists_every_migration_and_creates_nothing(fresh_db: str, tmp_path: Path) -> None:
    res = _netops(_env(fresh_db, tmp_path), "db", "migrate", "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["current"] is None and out["code"] == code_version()
    assert out["pending"] == [f"{v}_{n}" for v, n, _ in available()]
    assert _objects(fresh_db) == []


def test_a_writer_waits_for_a_migration_in_progress(pg_dsn: str) -> None:
    holder = psycopg2.connect(pg_dsn)
    holder.autocommit = True
    done: list[float] = []
    try:
        with holder.cursor() as cur:
            locks.session_lock(cur, locks.MIGRATE)   # what `netops db migrate` holds while it runs
        t = threading.Thread(target=lambda: (require_schema(pg_dsn), done.append(time.monotonic())))
        t.start()
        time.sleep(1.0)
        assert done == []                            # still waiting
        released = time.monotonic()
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (locks.MIGRATE,))
        t.join(10)
        assert done and done[0] >= released
    finally:
        holder.close()


def test_require_schema_is_a_database_error(fresh_db: str) -> None:
    with pytest.raises(DatabaseError, match="netops db migrate"):
        require_schema(fresh_db)
