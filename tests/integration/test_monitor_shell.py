"""The psql invocation really opens the configured database (psql found on PATH or beside the
server binaries)."""

from __future__ import annotations

import subprocess

from netops.db.shell import psql_invocation


def test_psql_opens_the_configured_database(pg_dsn: str) -> None:
    inv = psql_invocation(pg_dsn, extra_args=["-XAtc", "select current_database(), current_setting('application_name')"])
    out = subprocess.run(inv.argv, env=inv.env, capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.strip() == f"{pg_dsn.split('/')[3].split('?')[0]}|netops-shell"
