"""`netops token status|refresh` act on every configured application key (issue 12), or on the
one `--key LABEL` names; real subprocesses against the simulator over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netops.sim.server import SimConfig, SimServer

SECOND_ID, SECOND_SECRET = "second-client", "second-secret-value"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    srv = SimServer(SimConfig(port=0, seed=42, backlog_scale=0.001, extra_clients={SECOND_ID: SECOND_SECRET})).start()
    yield srv
    srv.stop()


def _run(sim: SimServer, tmp: Path, *args: str, second_secret: str = SECOND_SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update({"NETOPS_CONFIG": "", "NETOPS_API_URL": sim.url, "NETOPS_STATE_DIR": str(tmp / "state"),
                "NETOPS_LOG_DIR": str(tmp / "logs"), "NETOPS_DSN": "postgresql:///none?host=/nonexistent",
                "NETOPS_CLIENT_ID": sim.client_id, "NETOPS_CLIENT_SECRET": sim.client_secret,
                "NETOPS_CLIENT_ID_2": SECOND_ID, "NETOPS_CLIENT_SECRET_2": second_secret})
    return subprocess.run([sys.executable, "-m", "netops", "token", *args], env=env, text=True,
                          capture_output=True, timeout=60)


def test_refresh_and_status_cover_every_key(sim: SimServer, tmp_path: Path) -> None:
    before = _run(sim, tmp_path, "status", "--json")
    assert before.returncode == 1  # nothing stored yet, for either key
    assert [k["key"] for k in json.loads(before.stdout)["keys"]] == ["default", "2"]
    out = _run(sim, tmp_path, "refresh")
    assert out.returncode == 0, out.stderr
    assert "key default:" in out.stdout and "key 2:" in out.stdout
    for name in ("token.json", "token-2.json"):
        assert oct((tmp_path / "state" / name).stat().st_mode & 0o777) == "0o600"
    after = _run(sim, tmp_path, "status", "--json")
    assert after.returncode == 0, after.stdout
    assert all(k["ttl_seconds"] > 0 for k in json.loads(after.stdout)["keys"])


def test_one_key_by_label_and_an_unknown_label(sim: SimServer, tmp_path: Path) -> None:
    out = _run(sim, tmp_path, "refresh", "--key", "2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["key"] == "2" and json.loads(out.stdout)["refreshed"] is True
    assert (tmp_path / "state" / "token-2.json").exists() and not (tmp_path / "state" / "token.json").exists()
    bad = _run(sim, tmp_path, "status", "--key", "nope")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "Error: --key nope: no application key has that label (configured: default, 2); "
        "`netops status` lists the keys"]


def test_a_refused_key_fails_after_the_others_are_refreshed(sim: SimServer, tmp_path: Path) -> None:
    out = _run(sim, tmp_path, "refresh", second_secret="not-the-secret")
    assert out.returncode == 1
    assert (tmp_path / "state" / "token.json").exists()  # the default key was refreshed all the same
    assert "credentials refused" in out.stderr and "key '2'" in out.stderr
    assert "not-the-secret" not in out.stderr + out.stdout


def test_bad_keys_are_all_named_up_front_before_the_database(tmp_path: Path) -> None:
    """Two bad keys: `sync stable` names both, one line each, exit 2, before any connect (the DSN
    points nowhere: a PostgreSQL error would mean the keys were checked too late)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update({"NETOPS_CONFIG": "", "NETOPS_STATE_DIR": str(tmp_path / "state"), "NETOPS_LOG_DIR": str(tmp_path / "l"),
                "NETOPS_DSN": "postgresql:///none?host=/nonexistent", "NETOPS_API_URL": "http://127.0.0.1:9",
                "NETOPS_CLIENT_ID": "u-1", "NETOPS_CLIENT_SECRET": "s-1",
                "NETOPS_CLIENT_ID_2": "u-2", "NETOPS_CLIENT_SECRET_3": "s-3"})
    for args in (("sync", "stable"), ("backlog", "detect")):
        out = subprocess.run([sys.executable, "-m", "netops", *args], env=env, text=True, capture_output=True,
                             timeout=60)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert lines == [
            "Error: NETOPS_CLIENT_ID_2 is set without NETOPS_CLIENT_SECRET_2 (or NETOPS_CLIENT_SECRET_FILE_2): "
            "give that application's secret",
            "NETOPS_CLIENT_SECRET_3 is set without NETOPS_CLIENT_ID_3: set the application's UID too, or remove "
            "the secret"], lines
