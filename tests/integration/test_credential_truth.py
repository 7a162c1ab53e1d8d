"""Credential truth (issue 22, item 6), through the real CLI in subprocesses against the real
simulator over HTTP and a real PostgreSQL: missing credentials are critical in `token status`,
`token refresh` and `status`; a refusal names the setting the secret really came from; and
`api_unauthorized` clears as soon as a token works again, not an hour later."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.fixtures.sim import TestSim


def _env(sim: TestSim, tmp: Path, dsn: str, **extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update({"NETOPS_CONFIG": "", "NETOPS_API_URL": sim.url, "NETOPS_STATE_DIR": str(tmp / "state"),
                "NETOPS_LOG_DIR": str(tmp / "logs"), "NETOPS_DSN": dsn,
                "NETOPS_CLIENT_ID": sim.client_id, "NETOPS_CLIENT_SECRET": sim.client_secret})
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _netops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netops", *args], env=env, text=True, capture_output=True,
                          timeout=120)


def _status(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    r = _netops(env, "status", "--json")
    return r.returncode, json.loads(r.stdout)


def test_an_unset_client_id_is_critical_in_token_status_refresh_and_status(
        sim: TestSim, pg_dsn: str, tmp_path: Path) -> None:
    good = _env(sim, tmp_path, pg_dsn)
    assert _netops(good, "token", "refresh").returncode == 0  # a token is stored: what used to pass
    no_id = _env(sim, tmp_path, pg_dsn, NETOPS_CLIENT_ID=None)

    st = _netops(no_id, "token", "status")
    assert st.returncode == 2, st.stdout
    assert "CRITICAL" in st.stdout and "NETOPS_CLIENT_ID is not" in st.stdout
    assert json.loads(_netops(no_id, "token", "status", "--json").stdout)["state"] == "critical"

    ref = _netops(no_id, "token", "refresh")
    assert ref.returncode == 2 and ref.stdout == ""
    assert "NETOPS_CLIENT_ID is not" in ref.stderr and "NETOPS_CLIENT_SECRET" in ref.stderr

    code, doc = _status(no_id)
    assert code == 2 and doc["state"] == "critical"
    assert "credentials" in doc["alerts"]["firing"]
    problem = next(p for p in doc["problems"] if p["check"] == "credentials")
    assert problem["severity"] == "critical" and "NETOPS_CLIENT_ID" in problem["message"]

    nothing = _env(sim, tmp_path / "bare", pg_dsn, NETOPS_CLIENT_ID=None, NETOPS_CLIENT_SECRET=None)
    assert _netops(nothing, "token", "status").returncode == 2
    assert _netops(nothing, "token", "refresh").returncode == 2


def test_a_wrong_secret_from_a_file_names_that_file(sim: TestSim, pg_dsn: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("not-the-secret\n")
    secret_file.chmod(0o600)
    env = _env(sim, tmp_path, pg_dsn, NETOPS_CLIENT_SECRET=None, NETOPS_CLIENT_SECRET_FILE=str(secret_file))
    r = _netops(env, "token", "refresh")
    assert r.returncode != 0
    assert f"NETOPS_CLIENT_SECRET_FILE={secret_file}" in r.stderr, r.stderr
    assert "not-the-secret" not in r.stderr + r.stdout

    # the same file named by the config file: the error names the config key and the file
    config = tmp_path / "netops.toml"
    config.write_text(f'client_secret_file = "{secret_file}"\n')
    config.chmod(0o600)
    env = {**env, "NETOPS_CONFIG": str(config)}
    del env["NETOPS_CLIENT_SECRET_FILE"]
    r = _netops(env, "token", "refresh")
    assert r.returncode != 0
    assert f"client_secret_file={secret_file} in {config}" in r.stderr, r.stderr

    # an empty secret file is named as such, not as "NETOPS_CLIENT_SECRET is not set"
    secret_file.write_text("")
    env = _env(sim, tmp_path, pg_dsn, NETOPS_CLIENT_SECRET=None, NETOPS_CLIENT_SECRET_FILE=str(secret_file))
    r = _netops(env, "token", "refresh")
    assert r.returncode == 2 and f"NETOPS_CLIENT_SECRET_FILE={secret_file}: the file is empty" in r.stderr


def test_api_unauthorized_clears_at_the_first_token_that_works(sim: TestSim, pg_dsn: str, tmp_path: Path) -> None:
    wrong = _env(sim, tmp_path, pg_dsn, NETOPS_CLIENT_SECRET="wrong-secret")
    refused = _netops(wrong, "token", "refresh")
    assert refused.returncode != 0 and "NETOPS_CLIENT_SECRET" in refused.stderr
    good = _env(sim, tmp_path, pg_dsn)
    code, doc = _status(good)
    assert "api_unauthorized" in doc["alerts"]["firing"] and code == 2  # the 401 of the POST /oauth/token
    # the Prometheus path reads the same value (its rule: netops_api_unauthorized_since_success > threshold)
    assert "netops_api_unauthorized_since_success 1.0" in _netops(good, "metrics", "export").stdout

    fixed = _netops(good, "token", "refresh")
    assert fixed.returncode == 0, fixed.stderr
    code, doc = _status(good)
    assert "api_unauthorized" not in doc["alerts"]["firing"], doc["problems"]
    assert doc["api"]["unauthorized_last_hour"] == 1  # the hour's count is still told, it just no longer fires
    assert "netops_api_unauthorized_since_success 0.0" in _netops(good, "metrics", "export").stdout


def test_a_refused_extra_key_names_its_own_secret_setting(sim: TestSim, pg_dsn: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret-2"
    secret_file.write_text("not-its-secret\n")
    env = _env(sim, tmp_path, pg_dsn, NETOPS_CLIENT_ID_2="u-second-app", NETOPS_CLIENT_SECRET_FILE_2=str(secret_file))
    r = _netops(env, "token", "refresh", "--key", "2")
    assert r.returncode != 0
    assert f"the secret of key '2' (NETOPS_CLIENT_SECRET_FILE_2={secret_file})" in r.stderr, r.stderr

    creds = tmp_path / "credentials.toml"
    creds.write_text('[[keys]]\nlabel = "b"\nclient_id = "u-third-app"\nclient_secret = "not-its-secret"\n')
    creds.chmod(0o600)
    env = _env(sim, tmp_path, pg_dsn, NETOPS_CREDENTIALS_FILE=str(creds))
    r = _netops(env, "token", "refresh", "--key", "b")
    assert r.returncode != 0
    assert f"the secret of key 'b' (client_secret of [[keys]] 'b' in {creds})" in r.stderr, r.stderr
