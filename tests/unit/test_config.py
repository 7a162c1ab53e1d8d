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


def test_config_show_writes_a_list_as_its_variable_takes_it(tmp_path: Path) -> None:
    """`config show` prints NETOPS_CAMPUS_IDS as `29,20` (what the operator would type), not
    Python's `(29, 20)`; an empty list as (none)."""
    from click.testing import CliRunner

    from netops.cli import cli

    env = {"NETOPS_CONFIG": "", "NETOPS_LOG_DIR": str(tmp_path / "logs")}
    line = next(ln for ln in CliRunner().invoke(cli, ["config", "show"], env={**env, "NETOPS_CAMPUS_IDS": "29,20"})
                .output.splitlines() if "NETOPS_CAMPUS_IDS " in ln)
    assert line.split()[1] == "29,20", line
    line = next(ln for ln in CliRunner().invoke(cli, ["config", "show"], env=env).output.splitlines()
                if "NETOPS_CAMPUS_IDS " in ln)
    assert line.split()[1] == "(none)", line


def test_settings_are_typed_frozen_and_declared_once() -> None:
    """One typed attribute per field of FIELDS (the same names, in the same order), each holding a
    value of its declared type once loaded; the object cannot be changed, only replaced."""
    import dataclasses
    import typing

    from netops.config import FIELDS, Settings

    hints = typing.get_type_hints(Settings)
    settings_fields = [f.name for f in dataclasses.fields(Settings) if "env" in f.metadata]
    assert settings_fields == [f.name for f in FIELDS]
    assert len({f.env for f in FIELDS}) == len(FIELDS)
    s = load_settings(env={"NETOPS_CLIENT_ID": "u", "NETOPS_CLIENT_SECRET": "s3cr3t-in-repr"}, config_path="")
    for f in FIELDS:
        declared = hints[f.name]
        origin = typing.get_origin(declared)
        # a union lists its members; a generic (tuple[int, ...]) is checked on its container
        kinds = (origin,) if origin in (tuple, list) else typing.get_args(declared) or (declared,)
        assert isinstance(getattr(s, f.name), kinds), (f.name, declared, getattr(s, f.name))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.rate_per_hour = 1  # type: ignore[misc]
    with pytest.raises(KeyError):
        s.replace(no_such_setting=1)
    assert "s3cr3t-in-repr" not in repr(s)   # secrets stay out of repr()


def test_keys_and_budget_are_read_once_when_settings_are_built(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """The CLI's key check, the API client and the budget all use the keys read when the
    settings were built; replace() builds new settings, so it reads them again from its values."""
    from netops import config
    from netops.api.client import ApiClient
    from netops.db.api_calls import NullRecorder

    reads: list[object] = []
    real = config.read_key_set
    monkeypatch.setattr(config, "read_key_set", lambda src: reads.append(src) or real(src))
    s = load_settings(env={"NETOPS_CLIENT_ID": "u-1", "NETOPS_CLIENT_SECRET": "s-1", "NETOPS_CLIENT_ID_2": "u-2",
                           "NETOPS_CLIENT_SECRET_2": "s-2", "NETOPS_STATE_DIR": str(tmp_path)}, config_path="")
    assert [k.label for k in s.require_keys()] == ["default", "2"]
    client = ApiClient(s, recorder=NullRecorder())
    assert [k.label for k in client.keys] == ["default", "2"]
    assert (s.budget.keys, s.budget.per_hour) == (2, 2400)
    assert len(reads) == 1
    half = s.replace(rate_per_hour=600)
    assert len(reads) == 2 and (half.budget.per_hour, half.keys.keys[1].per_hour) == (1200, 600)


def test_bad_keys_are_problems_not_errors_until_a_command_needs_them(tmp_path: Path) -> None:
    """Building settings never fails on a bad key (`config show` still works); require_keys()
    names every bad one, one line each, and the budget is one key's."""
    s = load_settings(env={"NETOPS_CLIENT_ID_2": "u-2", "NETOPS_CLIENT_SECRET_B": "s-b",
                           "NETOPS_STATE_DIR": str(tmp_path)}, config_path="")
    assert len(s.keys.problems) == 2 and s.keys.keys == ()
    with pytest.raises(ConfigError) as exc:
        s.require_keys(required=False)
    assert str(exc.value).splitlines() == list(s.keys.problems)
    assert (s.budget.keys, s.budget.per_hour) == (1, 1200)
