"""The psql invocation really opens the configured database (psql client required)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from netops.db.shell import psql_invocation


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql client not installed")
def test_psql_opens_the_configured_database(pg_dsn: str) -> None:
    inv = psql_invocation(pg_dsn, extra_args=["-XAtc", "select current_database(), current_setting('application_name')"])
    out = subprocess.run(inv.argv, env=inv.env, capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.strip() == f"{pg_dsn.split('/')[3].split('?')[0]}|netops-shell"
