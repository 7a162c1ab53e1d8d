"""Bad input and config (issue 7, item 5): every config error names its key in one line (exit 2),
an unreachable DSN, a missing / impossible log dir and a full disk under the log dir each give a
clear error and lose nothing."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netops.config import FIELDS, ConfigError, Field, load_settings
from tests.reliability.conftest import (
    STABLE,
    Mirror,
    base_env,
    digest,
    invariants,
    netops_cli,
    one_line_error,
)

CANDIDATES = ("not-a-number", "-5", "100000000", "", "maybe", "ftp://x")


def _bad_value(f: Field) -> str | None:
    """A value this field's parser refuses, or None when it accepts anything (free text)."""
    for value in CANDIDATES:
        try:
            load_settings(env={f.env: value}, config_path="")
        except ConfigError:
            return value
    return None


CHECKED = [(f, _bad_value(f)) for f in FIELDS]
FREE_TEXT = [f.env for f, v in CHECKED if v is None]


def test_free_text_fields_are_only_strings_and_paths() -> None:
    """The fields with no bad value are free text by nature; anything else must be validated."""
    assert set(FREE_TEXT) <= {"NETOPS_CLIENT_ID", "NETOPS_CLIENT_SECRET", "NETOPS_CLIENT_SECRET_FILE", "NETOPS_CREDENTIALS_FILE",
                              "NETOPS_DSN", "NETOPS_DB_NAME", "NETOPS_PG_BIN_DIR", "NETOPS_PG_SYSTEM_USER",
                              "NETOPS_METRICS_DIR", "NETOPS_BACKUP_DIR", "NETOPS_NGINX_URL",
                              "NETOPS_ALERT_WEBHOOK_URL"}, FREE_TEXT


@pytest.mark.parametrize("field,value", [(f, v) for f, v in CHECKED if v is not None],
                         ids=[f.env for f, v in CHECKED if v is not None])
def test_every_bad_config_value_names_its_key(field: Field, value: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update({"NETOPS_CONFIG": "", "NETOPS_LOG_DIR": str(tmp_path / "logs"),
                "NETOPS_STATE_DIR": str(tmp_path / "state"), field.env: value})
    proc = netops_cli(env, "sync", "stable", timeout=30)
    assert proc.returncode == 2, (field.env, proc.returncode, proc.stderr)
    line = one_line_error(proc)
    assert field.env in line and "expected" in line, line
    if field.secret:  # never printed back; test_a_bad_dsn_never_shows_its_password does not need the flag
        assert value and value not in line.replace(field.env, ""), line


@pytest.mark.parametrize("dsn", ["hunter2pw", "host=db password=hunter2pw bogus"],
                         ids=["libpq-echoes-the-value", "value-with-a-password"])
def test_a_bad_dsn_never_shows_its_password(dsn: str, tmp_path: Path) -> None:
    """A DSN holds a password: the one-line error names NETOPS_DSN and libpq's reason, never the
    value. Judged on the output alone, not on the field's `secret` flag (the parametrized test
    above only looks when the flag is set, so losing the flag would silence it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update({"NETOPS_CONFIG": "", "NETOPS_LOG_DIR": str(tmp_path / "logs"),
                "NETOPS_STATE_DIR": str(tmp_path / "state"), "NETOPS_DSN": dsn})
    proc = netops_cli(env, "sync", "stable", timeout=30)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert "NETOPS_DSN" in line and "cannot be parsed" in line, line
    assert "hunter2pw" not in proc.stderr + proc.stdout, line


def test_bad_value_in_config_file_names_file_and_key(tmp_path: Path) -> None:
    conf = tmp_path / "netops.toml"
    conf.write_text('page_size = 500\nlog_dir = "%s"\n' % (tmp_path / "logs"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env["NETOPS_CONFIG"] = str(conf)
    proc = netops_cli(env, "sync", "stable", timeout=30)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert str(conf) in line and "page_size" in line and "<= 100" in line, line


def test_unreachable_dsn_is_one_clear_line(sim: Any, tmp_path: Path) -> None:
    env = base_env(sim, "postgresql://postgres@127.0.0.1:1/nope", tmp_path)
    proc = netops_cli(env, "sync", "stable", timeout=60)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "cannot connect to PostgreSQL" in line and "NETOPS_DSN" in line, line
    assert sim.stats()["total"] == 0  # not a single API call was spent on a run that cannot store


def test_missing_log_dir_is_created(sim: Any, mirror: Mirror, tmp_path: Path) -> None:
    env = base_env(sim, mirror.dsn, tmp_path, NETOPS_LOG_DIR=tmp_path / "not" / "yet" / "there")
    proc = netops_cli(env, "sync", "stable", "--phase", "campuses")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "not" / "yet" / "there" / "nightly_stable_tables.log").stat().st_size > 0


def test_impossible_log_dir_fails_clearly_and_changes_nothing(sim: Any, mirror: Mirror, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    old = digest(mirror.dsn)
    sim.delete("coalitions", sim.expected_table("coalitions", values=False)["keys"][0][0])
    env = base_env(sim, mirror.dsn, tmp_path, NETOPS_LOG_DIR=tmp_path / "a-file" / "logs")
    proc = netops_cli(env, "sync", "stable")
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert str(tmp_path / "a-file" / "logs") in line, line
    assert digest(mirror.dsn) == old


def _limit_file_size(limit: int) -> Any:
    def apply() -> None:
        # a full disk, for this child only: writes past `limit` bytes fail with EFBIG (SIGXFSZ
        # ignored, or the kernel would kill the child instead of failing the write)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("room", [0, 600], ids=["full-from-the-start", "full-mid-run"])
def test_full_log_disk_fails_clearly_and_loses_nothing(room: int, sim: Any, mirror: Mirror, tmp_path: Path) -> None:
    """The log file cannot grow (RLIMIT_FSIZE in the child): the sync stops with one line, and
    every table is its old or its new state — a phase either committed or did not."""
    old = digest(mirror.dsn)
    sim.delete("coalitions", sim.expected_table("coalitions", values=False)["keys"][0][0])
    logs = tmp_path / "logs"
    logs.mkdir()
    env = base_env(sim, mirror.dsn, tmp_path)
    # the token store must be writable (a different disk on a real box): get the token first
    assert netops_cli(env, "token", "refresh").returncode == 0
    for p in logs.iterdir():
        p.unlink()
    limit = 4096
    (logs / "nightly_stable_tables.log").write_bytes(b"x" * (limit - room))
    proc = subprocess.run([sys.executable, "-m", "netops", "sync", "stable"], env=env, capture_output=True,
                          text=True, timeout=120, preexec_fn=_limit_file_size(limit), stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    line = one_line_error(proc)
    assert "nightly_stable_tables.log" in line or str(logs) in line, line
    # the cause itself (EFBIG from the file-size limit, or ENOSPC), not a word of the tmp path
    assert "File too large on" in line or "No space left on device on" in line, line
    got = digest(mirror.dsn)
    exp = sim.expected()
    for t in STABLE:
        assert got[t] == old[t] or got[t][0] == exp[t], t
    assert invariants(mirror.dsn) == []
    # and with room again, the next run completes
    (logs / "nightly_stable_tables.log").unlink()
    again = netops_cli(env, "sync", "stable")
    assert again.returncode == 0, again.stderr
    assert digest(mirror.dsn, ["coalitions"])["coalitions"][0] == exp["coalitions"]
