"""Application keys (netops/credentials.py, read once into settings.keys): the three ways to give them, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest

from netops.api.auth import credential_fingerprint
from netops.api.limiter import KeysExhausted, LocalLimiter
from netops.config import ConfigError, load_settings, tomllib
from netops.credentials import ApiKey
from netops.log import redact
from netops.monitor.facts import key_rows
from netops.monitor.formatting import render_key_line

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, config: str | None = None, **env: str):  # type: ignore[no-untyped-def]
    base = {"NETOPS_STATE_DIR": str(tmp_path / "state"), "NETOPS_LOG_DIR": str(tmp_path / "logs")}
    base.update(env)
    return load_settings(env=base, config_path=config if config is not None else "")


def test_one_key_is_the_simple_default(tmp_path: Path) -> None:
    s = _settings(tmp_path, NETOPS_CLIENT_ID="u-1", NETOPS_CLIENT_SECRET="s-1")
    [k] = s.require_keys()
    assert (k.label, k.client_id, k.token_file) == ("default", "u-1", s.token_file)
    assert "s-1" not in repr(k)  # a logged key shows no secret


def test_no_key_names_the_default_variables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NETOPS_CLIENT_ID is not set"):
        _settings(tmp_path).require_keys()


def test_environment_keys_each_with_its_own_token_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "s3"
    secret_file.write_text("s-3\n")
    s = _settings(tmp_path, NETOPS_CLIENT_ID="u-1", NETOPS_CLIENT_SECRET="s-1", NETOPS_CLIENT_ID_2="u-2",
                  NETOPS_CLIENT_SECRET_2="s-two", NETOPS_CLIENT_ID_B="u-3",
                  NETOPS_CLIENT_SECRET_FILE_B=str(secret_file))
    keys = s.require_keys()
    assert [(k.label, k.client_id, k.secret, k.token_file.name) for k in keys] == [
        ("default", "u-1", "s-1", "token.json"), ("2", "u-2", "s-two", "token-2.json"),
        ("b", "u-3", "s-3", "token-b.json")]
    # every secret is redacted from logs once loaded; none appears in `config show`
    assert "s-two" not in redact("token request with s-two failed")
    assert "s-two" in s.known_secrets()
    assert "s-two" not in json.dumps(s.public_dict())


def test_environment_key_without_secret_is_refused(tmp_path: Path) -> None:
    s = _settings(tmp_path, NETOPS_CLIENT_ID="u-1", NETOPS_CLIENT_SECRET="s-1", NETOPS_CLIENT_ID_2="u-2")
    with pytest.raises(ConfigError, match="NETOPS_CLIENT_ID_2 is set without NETOPS_CLIENT_SECRET_2"):
        s.require_keys()


def test_the_same_application_twice_is_refused(tmp_path: Path) -> None:
    s = _settings(tmp_path, NETOPS_CLIENT_ID="u-1", NETOPS_CLIENT_SECRET="s-1", NETOPS_CLIENT_ID_2="u-1",
                  NETOPS_CLIENT_SECRET_2="s-1")
    with pytest.raises(ConfigError, match="client id u-1 is given twice"):
        s.require_keys()


def _credentials(tmp_path: Path, mode: int, body: str | None = None) -> Path:
    path = tmp_path / "credentials.toml"
    path.write_text(body or '[[keys]]\nlabel = "a"\nclient_id = "u-a"\nclient_secret = "s-a"\n'
                            '[[keys]]\nlabel = "b"\nclient_id = "u-b"\nclient_secret = "s-b"\nrate_per_hour = 600\n')
    path.chmod(mode)
    return path


def test_credentials_file_gives_several_keys_with_their_quotas(tmp_path: Path) -> None:
    path = _credentials(tmp_path, 0o600)
    keys = _settings(tmp_path, NETOPS_CREDENTIALS_FILE=str(path)).require_keys()
    assert [(k.label, k.client_id, k.per_hour) for k in keys] == [("a", "u-a", 1200), ("b", "u-b", 600)]


def test_world_readable_credentials_file_is_refused(tmp_path: Path) -> None:
    path = _credentials(tmp_path, 0o644)
    with pytest.raises(ConfigError, match=r"readable by every user \(mode 0644\).*chmod 600"):
        _settings(tmp_path, NETOPS_CREDENTIALS_FILE=str(path)).require_keys()


def test_credentials_file_cannot_raise_a_key_above_the_configured_budget(tmp_path: Path) -> None:
    body = '[[keys]]\nlabel = "a"\nclient_id = "u-a"\nclient_secret = "s-a"\nrate_per_second = 50\n'
    path = _credentials(tmp_path, 0o640, body)
    [k] = _settings(tmp_path, NETOPS_CREDENTIALS_FILE=str(path), NETOPS_RATE_PER_SECOND="2").require_keys()
    assert k.per_second == 2.0


def test_bad_credentials_entry_names_the_entry(tmp_path: Path) -> None:
    path = _credentials(tmp_path, 0o600, '[[keys]]\nlabel = "a b"\nclient_id = "u"\nclient_secret = "s"\n')
    with pytest.raises(ConfigError, match="key #1: label 'a b' is missing or invalid"):
        _settings(tmp_path, NETOPS_CREDENTIALS_FILE=str(path)).require_keys()


def test_role_template_writes_keys_netops_reads(tmp_path: Path) -> None:
    """roles/netops/templates/netops.toml.j2 with netops_api_keys from the vault renders [[keys]]
    that this module reads from the config file itself (0640, as the role writes it)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT / "roles/netops/templates"),
                             undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    text = env.get_template("netops.toml.j2").render(
        ansible_managed="test", netops_group="netops", __netops_api_url="http://127.0.0.1:1",
        netops_client_id="u-1", netops_client_secret='s"1', netops_cursus_id=21, netops_rate_per_second=2,
        netops_rate_per_hour=1200, __netops_dsn="", netops_log_dir=str(tmp_path / "logs"),
        netops_state_dir=str(tmp_path / "state"), netops_nginx_url="", netops_backlog_fetch_batch_size=100,
        netops_backlog_metric_interval=60, netops_extra_settings={}, netops_backup_dir="", netops_backup_keep=7,
        netops_api_keys=[{"label": "b", "client_id": "u-b", "client_secret": "s-b", "rate_per_hour": 600}])
    tomllib.loads(text)
    cfg = tmp_path / "netops.toml"
    cfg.write_text(text)
    cfg.chmod(0o640)
    s = load_settings(env={}, config_path=str(cfg))
    assert [(k.label, k.client_id, k.secret, k.per_hour) for k in s.require_keys()] == [
        ("default", "u-1", 's"1', 1200), ("b", "u-b", "s-b", 600)]
    cfg.chmod(0o644)   # the keys are read when the settings are built: build them again
    with pytest.raises(ConfigError, match="readable by every user"):
        load_settings(env={}, config_path=str(cfg)).require_keys()


def test_local_limiter_spreads_calls_over_keys_and_skips_a_set_aside_one(tmp_path: Path) -> None:
    a = ApiKey("a", "u-a", "s", 1000.0, 1_000_000, tmp_path / "a", "test")
    b = ApiKey("b", "u-b", "s", 1000.0, 1_000_000, tmp_path / "b", "test")
    lim = LocalLimiter()
    got = [lim.acquire([a, b]).label for _ in range(6)]
    assert got.count("a") == got.count("b") == 3
    lim.set_aside(a, "refused")
    assert {lim.acquire([a, b]).label for _ in range(4)} == {"b"}
    lim.set_aside(b, "refused")
    with pytest.raises(KeysExhausted, match="every application key is set aside"):
        lim.acquire([a, b])


def test_key_rows_without_database_show_token_ttl_per_key(tmp_path: Path) -> None:
    s = _settings(tmp_path, NETOPS_CLIENT_ID="u-1", NETOPS_CLIENT_SECRET="s-1", NETOPS_CLIENT_ID_2="u-2",
                  NETOPS_CLIENT_SECRET_2="s-2", NETOPS_API_URL="http://127.0.0.1:9")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "token-2.json").write_text(json.dumps(
        {"access_token": "t", "expires_at": 1_000_000 + 3600, "api_url": "http://127.0.0.1:9", "client_id": "u-2",
         # the token store names the credentials that obtained it (issue 13): without it, not ours
         "credential_fp": credential_fingerprint("http://127.0.0.1:9", "u-2", "s-2")}))
    rows = key_rows(s, None, now=1_000_000)
    assert [(r.label, r.token_ttl_seconds) for r in rows] == [("default", None), ("2", 3600)]
    # the database is down: the calls are unknown, not a reassuring 0
    assert all(r.calls_last_hour is None and r.calls_last_second is None for r in rows)
    assert render_key_line(rows[1]) == "key 2 (u-2): token 3,600s · calls unknown (database unreachable)"


def test_budget_is_keys_times_each_keys_budget(tmp_path: Path) -> None:
    one = _settings(tmp_path, NETOPS_CLIENT_ID="u-1", NETOPS_CLIENT_SECRET="s-1").budget
    assert (one.keys, one.per_second, one.per_hour, one.note()) == (1, 2.0, 1200, "")
    two = _settings(tmp_path, NETOPS_CLIENT_ID="u-1", NETOPS_CLIENT_SECRET="s-1", NETOPS_CLIENT_ID_2="u-2",
                    NETOPS_CLIENT_SECRET_2="s-2", NETOPS_RATE_PER_HOUR="500").budget
    assert (two.keys, two.per_second, two.per_hour) == (2, 4.0, 1000)
    assert two.note() == ", 2 keys × 500/h"
    # keys that cannot be read: one key's budget (the key lines show the error itself)
    bad = _settings(tmp_path, NETOPS_CLIENT_ID="u-1", NETOPS_CLIENT_SECRET="s-1", NETOPS_CLIENT_ID_2="u-2").budget
    assert (bad.keys, bad.per_hour) == (1, 1200)
