"""Settings: precedence, validation messages that name the key, secret masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from netops.config import ConfigError, load_settings


def test_defaults_file_env_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "netops.toml"
    cfg.write_text('rate_per_second = 5\nrate_per_hour = 100\n[backlog]\nfetch_batch_size = 7\n')
    s = load_settings(env={"NETOPS_RATE_PER_HOUR": "50"}, config_path=str(cfg))
    assert s.rate_per_second == 5.0 and s.sources["rate_per_second"] == str(cfg)
    assert s.rate_per_hour == 50 and s.sources["rate_per_hour"] == "env"
    assert s.backlog_fetch_batch_size == 7
    assert s.page_size == 100 and s.sources["page_size"] == "default"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NETOPS_RATE_PER_SECOND": "fast"}, "NETOPS_RATE_PER_SECOND='fast' is invalid: expected a number"),
        ({"NETOPS_PAGE_SIZE": "500"}, "NETOPS_PAGE_SIZE='500' is invalid: expected a value <= 100"),
        ({"BACKLOG_ENABLE_METRICS": "maybe"}, "BACKLOG_ENABLE_METRICS='maybe' is invalid: expected true or false"),
        ({"NETOPS_API_URL": "api.intra.42.fr"}, "NETOPS_API_URL='api.intra.42.fr' is invalid: expected an http"),
        ({"BACKLOG_MAX_RETRIES": "-1"}, "BACKLOG_MAX_RETRIES='-1' is invalid: expected a value >= 0"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(env=env, config_path="")
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)


def test_bad_file_key_and_syntax(tmp_path: Path) -> None:
    cfg = tmp_path / "netops.toml"
    cfg.write_text("rate_per_secnd = 5\n")
    with pytest.raises(ConfigError, match="unknown key 'rate_per_secnd'"):
        load_settings(env={}, config_path=str(cfg))
    cfg.write_text("rate_per_second = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(env={}, config_path=str(cfg))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(env={"NETOPS_CONFIG": str(tmp_path / "missing.toml")})


def test_secrets_masked_and_required(tmp_path: Path) -> None:
    s = load_settings(env={"NETOPS_CLIENT_ID": "uid", "NETOPS_CLIENT_SECRET": "s3cr3t-value"}, config_path="")
    assert s.public_dict()["client_secret"] == "***"
    assert "s3cr3t-value" in s.known_secrets()
    assert s.require_credentials() == ("uid", "s3cr3t-value")
    with pytest.raises(ConfigError, match="NETOPS_CLIENT_SECRET=\\*\\*\\* is invalid|NETOPS_CLIENT_ID is not set"):
        load_settings(env={}, config_path="").require_credentials()
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    s = load_settings(env={"NETOPS_CLIENT_ID": "u", "NETOPS_CLIENT_SECRET_FILE": str(secret_file)}, config_path="")
    assert s.secret() == "from-file"


def test_every_cli_command_registers_the_configured_secrets_for_redaction(tmp_path: Path) -> None:
    """Whatever code path later logs it, the client secret from the settings is masked: the CLI
    registers it when it loads the settings, before any token refresh."""
    from click.testing import CliRunner

    from netops.cli import cli
    from netops.log import redact

    secret = "cfg-secret-never-logged-7731"
    res = CliRunner().invoke(cli, ["config", "show"], env={"NETOPS_CONFIG": "", "NETOPS_CLIENT_SECRET": secret,
                                                          "NETOPS_LOG_DIR": str(tmp_path / "logs")})
    assert res.exit_code == 0, res.output
    assert secret not in redact(f"client_secret={secret}")
