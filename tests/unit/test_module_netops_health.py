"""Unit tests for library/netops_health.py (and the module_utils it shares with netops_fleet).

The module runs `netops status --json`; here a tiny fake `netops` script written by each test
prints a given document and exits with a given code (the real command is exercised by the
molecule scenario in tests/ansible).
"""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import pytest

pytest.importorskip("ansible", reason="the deploy extra (ansible-core) is not installed")

import ansible.module_utils  # noqa: E402
from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# The bundle's module_utils/ is what ansible.cfg's `module_utils` points at; expose it the same way.
if str(REPO / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(REPO / "module_utils"))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"netops_library_{name}", REPO / "library" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


health = _load("netops_health")
from ansible.module_utils import netops_status as util  # noqa: E402


class Exit(Exception):
    def __init__(self, kind: str, result: dict):
        super().__init__(kind)
        self.kind = kind
        self.result = result


@pytest.fixture(autouse=True)
def _capture_exit(monkeypatch):
    def exit_json(self, **kwargs):
        raise Exit("exit", kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs["msg"] = msg
        kwargs["failed"] = True
        raise Exit("fail", kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


def run_module(args: dict) -> Exit:
    with patch_module_args(args), pytest.raises(Exit) as info:
        health.main()
    return info.value


def status_doc(state: str, problems=None, **extra) -> dict:
    doc = {
        "state": state,
        "checked_at": "2026-11-29T02:00:00Z",
        "problems": problems or [],
        "services": {
            "postgresql": {"ok": True, "version": "15.18", "error": None},
            "nginx": {"ok": True, "url": "http://127.0.0.1:8080/", "error": None},
        },
        "phases": [
            {
                "phase": "cursus",
                "table": "cursus",
                "last_status": "success",
                "last_finished_at": "2026-11-29T01:00:00Z",
                "age_seconds": 3600.0,
                "rows_inserted": 1,
                "rows_updated": 0,
                "rows_deleted": 0,
                "duration_seconds": 0.4,
                "error": None,
            }
        ],
        "last_sync": {"finished_at": "2026-11-29T01:00:00Z", "age_seconds": 3600.0, "status": "success"},
        "backlog": {"available": True, "pending": 7, "processing": 0, "failed": 0},
        "tables": {"cursus": {"rows": 1, "exact": True}},
        "database": {"size_bytes": 1000},
        "disk": {},
        "token": {"present": True, "ttl_seconds": 5000, "secret_valid_until": None},
        "alerts": {"firing": []},
    }
    doc.update(extra)
    return doc


WARNING = [{"severity": "warning", "check": "token", "message": "no API token stored yet"}]
CRITICAL = [
    {"severity": "critical", "check": "postgresql", "message": "PostgreSQL is not reachable"},
    {"severity": "warning", "check": "sync", "message": "no sync has ever run"},
]


@pytest.fixture
def fake_netops(tmp_path):
    """Write a fake `netops` that prints `output` and exits `rc`; it records its argv and env."""

    def make(output, rc: int = 0) -> str:
        out = tmp_path / "output.txt"
        out.write_text(output if isinstance(output, str) else json.dumps(output))
        script = tmp_path / "netops"
        script.write_text(
            "#!/bin/sh\n"
            f'printf "%s\\n" "$*" > "{tmp_path}/argv"\n'
            f'printf "%s" "${{NETOPS_DSN:-unset}}" > "{tmp_path}/dsn"\n'
            f'printf "%s" "${{NETOPS_CONFIG-unset}}" > "{tmp_path}/config_env"\n'
            f'cat "{out}"\n'
            f"exit {rc}\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return str(script)

    make.dir = tmp_path
    return make


# --- the shared judgement ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "rc", "summary"),
    [
        ("ok", 0, "ok"),
        ("warning", 1, "warning"),
        ("critical", 2, "critical"),
        ("ok", 2, "critical"),
        ("critical", 0, "critical"),
        ("warning", 0, "warning"),
    ],
)
def test_parse_status_takes_the_worse_of_state_and_exit_code(state, rc, summary):
    doc, got, error = util.parse_status(json.dumps(status_doc(state)), rc)
    assert (doc["state"], got, error) == (state, summary, None)


@pytest.mark.parametrize(
    ("stdout", "rc", "fragment"),
    [
        ("", 0, "printed nothing"),
        ("Traceback (most recent call last):", 1, "did not print JSON"),
        ('{"no": "state"}', 0, "without a valid 'state'"),
        (json.dumps(status_doc("ok")), 3, "exited with 3"),
    ],
)
def test_unreadable_status_is_critical(stdout, rc, fragment):
    _, summary, error = util.parse_status(stdout, rc)
    assert summary == "critical"
    assert fragment in error


@pytest.mark.parametrize(
    ("summary", "fail_on", "fails"),
    [
        ("ok", "critical", False),
        ("warning", "critical", False),
        ("critical", "critical", True),
        ("ok", "warning", False),
        ("warning", "warning", True),
        ("critical", "warning", True),
        ("critical", "never", False),
        ("unknown", "critical", True),
    ],
)
def test_should_fail(summary, fail_on, fails):
    assert util.should_fail(summary, fail_on) is fails


# --- the module, end to end against a fake executable ------------------------------------------


def test_healthy_host(fake_netops):
    res = run_module({"netops_bin": fake_netops(status_doc("ok"), 0)})
    assert res.kind == "exit"
    r = res.result
    assert r["changed"] is False
    assert r["summary_state"] == "ok"
    assert r["exit_code"] == 0
    assert "rc" not in r  # Ansible would mark any non-zero rc as failed
    assert r["error"] is None
    assert r["services"] == {"nginx": "ok", "postgresql": "ok"}
    assert r["backlog_pending"] == 7
    assert r["last_sync_age_seconds"] == 3600.0
    assert r["status"]["phases"][0]["phase"] == "cursus"
    assert (fake_netops.dir / "argv").read_text().strip() == "status --json"


def test_warning_host_passes_by_default_and_reports_problems(fake_netops):
    res = run_module({"netops_bin": fake_netops(status_doc("warning", WARNING), 1)})
    assert res.kind == "exit"
    assert res.result["summary_state"] == "warning"
    assert res.result["problems"] == WARNING
    assert res.result["changed"] is False
    assert res.result["exit_code"] == 1
    assert "rc" not in res.result


def test_warning_host_fails_with_fail_on_warning(fake_netops):
    res = run_module({"netops_bin": fake_netops(status_doc("warning", WARNING), 1), "fail_on": "warning"})
    assert res.kind == "fail"
    assert "netops health is warning" in res.result["msg"]
    assert "no API token stored yet" in res.result["msg"]
    assert res.result["changed"] is False


def test_critical_host_fails_by_default(fake_netops):
    doc = status_doc("critical", CRITICAL, alerts={"firing": ["db_down"]})
    doc["services"]["postgresql"] = {"ok": False, "version": None, "error": "connection refused"}
    res = run_module({"netops_bin": fake_netops(doc, 2)})
    assert res.kind == "fail"
    r = res.result
    assert r["summary_state"] == "critical"
    assert r["services"]["postgresql"] == "down"
    assert r["firing_alerts"] == ["db_down"]
    # the message names the critical problems first
    assert "postgresql: PostgreSQL is not reachable" in r["msg"]
    assert "no sync has ever run" not in r["msg"]


def test_critical_host_only_reported_with_fail_on_never(fake_netops):
    res = run_module({"netops_bin": fake_netops(status_doc("critical", CRITICAL), 2), "fail_on": "never"})
    assert res.kind == "exit"
    assert res.result["summary_state"] == "critical"


def test_exit_code_wins_over_an_optimistic_document(fake_netops):
    res = run_module({"netops_bin": fake_netops(status_doc("ok"), 2), "fail_on": "never"})
    assert res.result["summary_state"] == "critical"


def test_check_mode_still_reads_and_changes_nothing(fake_netops):
    res = run_module(
        {"netops_bin": fake_netops(status_doc("warning", WARNING), 1), "_ansible_check_mode": True}
    )
    assert res.kind == "exit"
    assert res.result["summary_state"] == "warning"
    assert res.result["changed"] is False
    assert (fake_netops.dir / "argv").exists()


def test_config_and_environment_reach_the_command(fake_netops):
    exe = fake_netops(status_doc("ok"), 0)
    res = run_module(
        {
            "netops_bin": exe,
            "config": "/srv/netops.toml",
            "environment": {"NETOPS_DSN": "host=127.0.0.1 port=1"},
        }
    )
    assert res.kind == "exit"
    assert (fake_netops.dir / "argv").read_text().strip() == "--config /srv/netops.toml status --json"
    assert (fake_netops.dir / "dsn").read_text() == "host=127.0.0.1 port=1"


def test_an_inherited_netops_config_does_not_hide_the_hosts_config(fake_netops, monkeypatch):
    # With a local connection the module inherits the controller's shell; CI exports
    # NETOPS_CONFIG="" for its own tests, which would make netops skip /etc/netops/netops.toml.
    monkeypatch.setenv("NETOPS_CONFIG", "")
    exe = fake_netops(status_doc("ok"), 0)
    assert run_module({"netops_bin": exe}).kind == "exit"
    assert (fake_netops.dir / "config_env").read_text() == "unset"
    # ...unless the play asks for it explicitly.
    assert run_module({"netops_bin": exe, "environment": {"NETOPS_CONFIG": "/srv/n.toml"}}).kind == "exit"
    assert (fake_netops.dir / "config_env").read_text() == "/srv/n.toml"


def test_garbage_output_is_critical_with_the_reason(fake_netops):
    res = run_module({"netops_bin": fake_netops("Traceback: boom", 1), "fail_on": "never"})
    assert res.kind == "exit"
    assert res.result["summary_state"] == "critical"
    assert "did not print JSON" in res.result["error"]


def test_missing_executable_is_reported_like_a_missing_library(tmp_path):
    res = run_module({"netops_bin": str(tmp_path / "nowhere" / "netops")})
    assert res.kind == "fail"
    assert res.result["summary_state"] == "critical"
    assert "Failed to find the required executable netops" in res.result["msg"]
    assert res.result["exit_code"] is None


# --- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"fail_on": "sometimes"}, "fail_on"),
        ({"timeout": 0}, "timeout must be >= 1"),
        ({"timeout": "soon"}, "timeout"),
        ({"no_such_option": 1}, "no_such_option"),
        ({"environment": ["NETOPS_DSN"]}, "environment"),
    ],
)
def test_bad_arguments_fail_cleanly(fake_netops, args, fragment):
    res = run_module({"netops_bin": fake_netops(status_doc("ok"), 0), **args})
    assert res.kind == "fail"
    assert fragment in res.result["msg"]
    assert not (fake_netops.dir / "argv").exists()  # nothing ran


def test_run_as_needs_root():
    params = {"netops_bin": "/opt/netops/venv/bin/netops", "config": None, "run_as": "netops", "timeout": 5}
    with pytest.raises(ValueError, match="needs root"):
        health.build_command(params, euid=1000, current_user="someone")
    assert health.build_command(params, euid=0, current_user="root") == [
        "timeout",
        "5",
        "runuser",
        "-u",
        "netops",
        "--",
        "/opt/netops/venv/bin/netops",
        "status",
        "--json",
    ]
    # already that user: no runuser
    assert health.build_command(params, euid=1000, current_user="netops")[2:] == [
        "/opt/netops/venv/bin/netops",
        "status",
        "--json",
    ]


def test_run_as_another_user_without_root_is_critical(fake_netops, monkeypatch):
    # the module as an unprivileged user sees it (CI runs as root: the uid is what it checks)
    monkeypatch.setattr(health.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(health, "_current_user", lambda: "someone")
    res = run_module(
        {"netops_bin": fake_netops(status_doc("ok"), 0), "run_as": "nobody-else", "fail_on": "never"}
    )
    assert res.result["summary_state"] == "critical"
    assert "needs root" in res.result["error"]


def test_documentation_is_valid_yaml_and_matches_the_argument_spec():
    import yaml

    doc = yaml.safe_load(health.DOCUMENTATION)
    assert set(doc["options"]) == set(health.argument_spec())
    assert doc["attributes"]["check_mode"]["support"] == "full"
    yaml.safe_load(health.EXAMPLES)
    ret = yaml.safe_load(health.RETURN)
    assert {"summary_state", "status", "exit_code", "error"} <= set(ret)
