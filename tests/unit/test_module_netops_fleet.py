"""Unit tests for library/netops_fleet.py: the one fleet table status.yml prints."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("ansible", reason="the deploy extra (ansible-core) is not installed")

import ansible.module_utils  # noqa: E402
from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(REPO / "module_utils"))

spec = importlib.util.spec_from_file_location(
    "netops_library_netops_fleet", REPO / "library" / "netops_fleet.py"
)
fleet = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = fleet
spec.loader.exec_module(fleet)


class Exit(Exception):
    def __init__(self, kind, result):
        super().__init__(kind)
        self.kind, self.result = kind, result


@pytest.fixture(autouse=True)
def _capture_exit(monkeypatch):
    def exit_json(self, **kwargs):
        raise Exit("exit", kwargs)

    def fail_json(self, msg, **kwargs):
        raise Exit("fail", {"msg": msg, **kwargs})

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


def health(state, pg=True, age=3600.0, pending=3, failed=0, firing=(), error=None, problems=()):
    return {
        "summary_state": state,
        "error": error,
        "status": {
            "state": state,
            "services": {"postgresql": {"ok": pg}, "nginx": {"ok": None}},
            "last_sync": {"age_seconds": age, "status": "success" if age is not None else None},
            "backlog": {"available": True, "pending": pending, "processing": 0, "failed": failed},
            "alerts": {"firing": list(firing)},
            "problems": [{"severity": sev, "check": check, "message": f"{check} is {sev}"}
                         for sev, check in problems],
        },
    }


def run(results, check_mode=False):
    args = {"results": results}
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(Exit) as info:
        fleet.main()
    return info.value


def test_table_lists_every_host_worst_first():
    res = run(
        {
            "b-ok": health("ok"),
            "a-warn": health("warning", age=None, pending=0),
            "c-crit": health("critical", pg=False, failed=2, firing=["db_down", "api_429"]),
            "d-gone": {},
        }
    )
    assert res.kind == "exit"
    r = res.result
    assert r["changed"] is False
    table = r["table"]
    assert table[0].split() == ["host", "state", "problems", "services", "last", "sync", "backlog", "firing", "alerts"]
    assert set(table[1]) <= {"-", " "}
    hosts = [line.split()[0] for line in table[2:]]
    assert hosts == ["d-gone", "c-crit", "a-warn", "b-ok"]
    crit = table[3]
    assert "postgresql:down" in crit and "nginx:n/a" in crit
    assert "3 pending, 2 failed" in crit and "db_down, api_429" in crit
    assert "60m" in table[5]
    assert "never" in table[4]
    assert r["critical_hosts"] == ["c-crit"]
    assert r["unreachable_hosts"] == ["d-gone"]
    assert r["warning_hosts"] == ["a-warn"]
    assert r["ok_hosts"] == ["b-ok"]
    assert r["counts"] == {"ok": 1, "warning": 1, "critical": 1, "unreachable": 1, "total": 4}
    assert r["fleet_state"] == "critical"
    # columns line up: every row is as wide as the rule at most
    assert all(len(line) <= len(table[1]) for line in table)


def test_all_ok_fleet_and_check_mode():
    res = run(
        {"h1": health("ok"), "h2": health("ok", age=90000), "h3": health("ok", age=200000)}, check_mode=True
    )
    assert res.kind == "exit"
    assert res.result["fleet_state"] == "ok"
    text = "\n".join(res.result["table"])
    assert "25.0h" in text and "2.3d" in text


def test_warning_fleet_is_not_critical():
    res = run({"h1": health("ok"), "h2": health("warning")})
    assert res.result["fleet_state"] == "warning"


def test_unreadable_host_shows_the_error():
    res = run({"h1": health("critical", error="netops status did not print JSON")})
    assert "netops: netops status did not print JSON" in res.result["table"][2]


def test_results_are_required():
    with patch_module_args({}), pytest.raises(Exit) as info:
        fleet.main()
    assert info.value.kind == "fail"
    assert "results" in info.value.result["msg"]


def test_unreachable_host_shows_the_gist_of_the_failure():
    msg = "Task failed: Failed to connect to the host via ssh: ssh: connect to host 10.0.0.9 port 22: Connection refused"
    res = run({"h1": {"unreachable": True, "msg": msg}, "h2": health("ok")})
    row = res.result["rows"][0]
    assert row["host"] == "h1" and row["state"] == "unreachable"
    # the reason is the host's problem, not a firing alert
    assert row["problems"].startswith("ssh: connect to host 10.0.0.9") and row["problems"].endswith("...")
    assert "Task failed" not in row["problems"]
    assert row["firing alerts"] == "-"
    assert res.result["fleet_state"] == "critical"


def test_state_comes_with_the_names_of_its_problems_worst_first():
    res = run({
        "h1": health("warning", problems=[("warning", "log_size"), ("warning", "token")]),
        "h2": health("critical", pg=False, problems=[("warning", "log_size"), ("critical", "postgresql"),
                                                     ("critical", "postgresql")]),
        "h3": health("ok"),
    })
    rows = {r["host"]: r for r in res.result["rows"]}
    assert rows["h1"]["problems"] == "log_size, token"
    assert rows["h2"]["problems"] == "postgresql, log_size"
    assert rows["h3"]["problems"] == "-"
    line = next(line for line in res.result["table"] if line.startswith("h1"))
    assert line.split()[1:4] == ["warning", "log_size,", "token"]
