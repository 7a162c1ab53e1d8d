"""The embedded PostgreSQL and the migrations, against a real server."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg2
import pytest

from netops.config import load_settings
from netops.db.migrate import applied_versions, available, migrate
from netops.db.server import LocalPostgres, resolve_dsn
from netops.errors import DatabaseError


def test_server_listens_on_socket_only(pg_server: LocalPostgres) -> None:
    with psycopg2.connect(pg_server.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SHOW listen_addresses")
        assert cur.fetchone()[0] == ""
        cur.execute("SHOW server_version_num")
        assert int(cur.fetchone()[0]) >= 130000
    mode = stat.S_IMODE(os.stat(pg_server.data_dir).st_mode)
    assert mode == 0o700


def test_up_is_idempotent_and_status_reports(pg_server: LocalPostgres) -> None:
    assert pg_server.up() == pg_server.dsn()
    info = pg_server.status()
    assert info["running"] is True and info["initialised"] is True
    assert info["dsn"] == pg_server.dsn()


def test_resolve_dsn_prefers_configured_dsn(tmp_path: Path) -> None:
    s = load_settings(env={"NETOPS_DSN": "postgresql://x@127.0.0.1/y", "NETOPS_STATE_DIR": str(tmp_path)},
                      config_path="")
    assert resolve_dsn(s) == "postgresql://x@127.0.0.1/y"


@pytest.mark.skipif(os.geteuid() != 0, reason="the private-folder check only applies when running as root")
def test_root_refuses_private_state_dir(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    s = load_settings(env={"NETOPS_STATE_DIR": str(private / "state")}, config_path="")
    with pytest.raises(DatabaseError, match="cannot enter .*private"):
        LocalPostgres(s).up()


def test_migrate_applies_once_and_records(fresh_db: str, tmp_path: Path) -> None:
    first = migrate(fresh_db, tmp_path)
    assert [v.split("_")[0] for v in first] == [v for v, _, _ in available()]
    assert migrate(fresh_db, tmp_path) == []
    assert applied_versions(fresh_db) == [v for v, _, _ in available()]
    logs = list(tmp_path.glob("init_db_*.log"))
    assert logs and "Applied migration 001_stable_tables" in "".join(p.read_text() for p in logs)


def test_stable_fks_cascade(pg_dsn: str) -> None:
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO campuses (id, name) VALUES (1, 'Paris')")
        cur.execute("INSERT INTO projects (id, name) VALUES (10, 'libft')")
        cur.execute("INSERT INTO campus_projects VALUES (1, 10)")
        cur.execute("INSERT INTO project_sessions (id, project_id) VALUES (100, 10)")
        cur.execute("DELETE FROM projects WHERE id = 10")
        cur.execute("SELECT (SELECT count(*) FROM campus_projects), (SELECT count(*) FROM project_sessions)")
        assert cur.fetchone() == (0, 0)


def test_mirror_lands_in_public_even_for_a_role_named_netops(pg_server: LocalPostgres, fresh_db: str,
                                                             tmp_path: Path) -> None:
    """PostgreSQL's default search_path starts with "$user": for a role called `netops` the
    tables would otherwise be created in the bookkeeping schema `netops`."""
    with psycopg2.connect(fresh_db) as conn, conn.cursor() as cur:
        cur.execute("DO $$ BEGIN CREATE ROLE netops LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        dbname = conn.get_dsn_parameters()["dbname"]
        cur.execute(f'ALTER DATABASE "{dbname}" OWNER TO netops')
    as_netops = fresh_db.replace("postgresql://postgres@", "postgresql://netops@")
    migrate(as_netops, tmp_path)
    with psycopg2.connect(fresh_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'campuses'")
        assert cur.fetchall() == [("public",)]


def test_a_database_error_in_a_command_is_one_line_naming_the_fix(fresh_db: str, tmp_path: Path) -> None:
    """`netops backlog status` on a database nobody migrated: one line naming `netops db migrate`,
    exit 1, no traceback."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NETOPS_CONFIG": "", "NETOPS_DSN": fresh_db, "NETOPS_LOG_DIR": str(tmp_path / "logs"),
           "NETOPS_STATE_DIR": str(tmp_path / "state")}
    out = subprocess.run([sys.executable, "-m", "netops", "backlog", "status"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert 'relation "netops.backlog_items" does not exist' in lines[0]
    assert "netops db migrate" in lines[0]
