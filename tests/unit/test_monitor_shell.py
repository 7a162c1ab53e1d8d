"""`netops db shell` invocation: the password never reaches argv, the DSN is what psql opens."""

from __future__ import annotations

import pytest
from psycopg2.extensions import parse_dsn

from netops.db.shell import psql_invocation
from netops.errors import NetopsError


def test_uri_password_moves_to_env_and_off_argv() -> None:
    inv = psql_invocation("postgresql://netops:s3cr%40t@db.example:6543/mirror?sslmode=require",
                          base_env={"PATH": "/usr/bin", "HOME": "/root"}, psql="/usr/bin/psql")
    assert inv.argv[0] == "/usr/bin/psql"
    assert not any("s3cr" in a for a in inv.argv)
    assert inv.env["PGPASSWORD"] == "s3cr@t"
    conninfo = parse_dsn(inv.argv[1])
    assert conninfo == {"user": "netops", "host": "db.example", "port": "6543", "dbname": "mirror",
                        "sslmode": "require", "application_name": "netops-shell"}
    assert inv.env["PATH"] == "/usr/bin" and inv.env["HOME"] == "/root"


def test_keyword_dsn_and_inherited_pg_vars_dropped() -> None:
    inv = psql_invocation("host=/run/pg dbname=netops user=postgres password='a b'",
                          base_env={"PGHOST": "evil", "PGDATABASE": "other", "PGPASSWORD": "old", "LANG": "C"},
                          psql="psql", extra_args=["-c", "select 1"])
    assert inv.env == {"LANG": "C", "PGPASSWORD": "a b"}
    assert inv.argv[2:] == ["-c", "select 1"]
    assert "a b" not in " ".join(inv.argv)
    assert parse_dsn(inv.argv[1])["host"] == "/run/pg"


def test_no_password_sets_no_pgpassword() -> None:
    inv = psql_invocation("postgresql://postgres@localhost/netops?host=/tmp/x", base_env={}, psql="psql")
    assert "PGPASSWORD" not in inv.env
    assert parse_dsn(inv.argv[1])["host"] == "/tmp/x"


def test_bad_dsn_is_one_actionable_line() -> None:
    with pytest.raises(NetopsError, match="cannot be parsed"):
        psql_invocation("host=x port", base_env={}, psql="psql")


def test_psql_from_bin_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "psql"
    fake.write_text("#!/bin/sh\n")
    inv = psql_invocation("dbname=x", pg_bin_dir=str(tmp_path), base_env={})
    assert inv.argv[0] == str(fake)
