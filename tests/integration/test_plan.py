"""The budget planner (`netops plan`, issue 23) against the real simulator over HTTP: its figures
come from the simulator's `X-Total`, a change burst moves them, and a schedule that cannot fit is
refused by the real command (exit 3, one line naming the knob) and by the role's preflight."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from netops.catalog import BACKLOG_BY_RESOURCE
from netops.config import Settings
from netops.pipeline import plan as planner
from netops.pipeline.plan import Observed, Stream, build, make_plan

REPO = Path(__file__).resolve().parents[2]


def _env(sim: Any, pg_dsn: str, tmp_path: Path, **extra: Any) -> dict[str, str]:
    return {"NETOPS_API_URL": sim.url, "NETOPS_CLIENT_ID": sim.client_id, "NETOPS_CLIENT_SECRET": sim.client_secret,
            "NETOPS_DSN": pg_dsn, "NETOPS_LOG_DIR": str(tmp_path / "logs"), "NETOPS_STATE_DIR": str(tmp_path / "state"),
            **{k: str(v) for k, v in extra.items()}}


@pytest.fixture
def sim_settings(sim: Any, settings_factory: Any) -> Settings:
    return settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                            NETOPS_CLIENT_SECRET=sim.client_secret)


def _x_total(sim: Any, path: str, **params: Any) -> int:
    resp = sim.get(path, **{**params, "page[size]": 1})
    resp.raise_for_status()
    return int(resp.headers["X-Total"])


def test_plan_rows_are_the_simulators_x_total_and_the_calls_follow(sim: Any, sim_settings: Settings,
                                                                  pg_dsn: str) -> None:
    result = make_plan(sim_settings, pg_dsn)
    by = {r.resource: r for r in result.resources}
    assert set(by) == set(BACKLOG_BY_RESOURCE)   # every backlog resource of the catalog, none else
    for name, spec in BACKLOG_BY_RESOURCE.items():
        path = spec.source.path.format(cursus=21)  # type: ignore[union-attr]
        params = {k: v.format(cursus=21) for k, v in spec.source.filters}  # type: ignore[union-attr]
        assert by[name].rows == _x_total(sim, path, **params) > 0, name
        # nothing changed in the seed's last day: one call a pass (the empty window), 12 passes an hour
        assert by[name].calls_per_pass == 1 and by[name].calls_per_hour == 12.0
    assert result.calls_per_hour == pytest.approx(5 * 12 + result.stable_calls_per_day / 24, abs=0.01)
    assert result.fits and result.problems == []
    # 2 probes per backlog resource + 1 per stable listing (+ the token)
    assert result.probe_calls >= 10


def test_a_change_burst_raises_the_change_rate_and_the_calls(sim: Any, sim_settings: Settings, pg_dsn: str) -> None:
    users = sorted(sim.data.tables["users"])[:480]
    sim.churn(changes=[{"op": "update", "resource": "users", "id": i, "fields": {"wallet": 7}} for i in users])
    settings = sim_settings.replace(page_size=10, schedule_backlog_minutes=60)
    result = make_plan(settings, pg_dsn)
    u = next(r for r in result.resources if r.resource == "users")
    assert u.changed_per_hour_api == pytest.approx(480 / planner.CHANGE_PROBE_HOURS)   # 20 an hour
    assert u.calls_per_pass == 2 and u.calls_per_hour == 2.0     # 20 rows a pass, 10 a page
    # the freshness it will have: the interval + settle + the pass drained at the keys' pace
    pace = settings.budget.per_second / (1 + settings.rate_window_margin)
    assert u.freshness_seconds == pytest.approx(3600 + 60 + result.pass_calls / pace, abs=0.2)


def test_campus_streams_lookback_open_sessions_and_sampling() -> None:
    """Locations cost their lookback and open sessions every pass; a sample plans the other campuses
    at its mean (a fake probe: the figures are known)."""
    from netops.config import load_settings

    settings = load_settings(env={"NETOPS_CAMPUS_IDS": ",".join(str(c) for c in range(1, 55)),
                                  "NETOPS_CLIENT_ID": "x", "NETOPS_CLIENT_SECRET": "y"}, config_path="")

    def probe(path: str, params: dict[str, Any]) -> int:
        if "locations" in path:
            return 40 if "filter[active]" in params else 720    # 720 begun in 72 h: 10 an hour
        if "range[updated_at]" in params:
            return 240 if "scale_teams" in path else 0          # 10 evaluations an hour a campus
        return 1000

    full = planner.observe(settings, probe, {})
    sampled = planner.observe(settings, probe, {}, sample=5)
    for a, b in zip(full, sampled, strict=True):
        assert (a.resource, a.scopes, a.pass_calls(5, 100)) == (b.resource, b.scopes, b.pass_calls(5, 100))
    loc = next(o for o in full if o.resource == "locations")
    # per campus: ceil((720 + 10 × 5/60) / 100) = 8 for the window, 1 for the 40 open sessions
    assert loc.scopes == 54 and loc.pass_calls(5, 100) == 54 * 9
    st = next(o for o in full if o.resource == "scale_teams")
    assert st.pass_calls(15, 100) == 54
    plan = build(settings, full, 23)
    assert not plan.fits and "NETOPS_SCHEDULE_BACKLOG_MINUTES" in plan.problems[0]


def test_build_names_the_schedule_that_would_fit() -> None:
    from netops.config import load_settings

    settings = load_settings(env={"NETOPS_RATE_PER_HOUR": "100", "NETOPS_SCHEDULE_BACKLOG_MINUTES": "1",
                                  "NETOPS_CLIENT_ID": "x", "NETOPS_CLIENT_SECRET": "y"}, config_path="")
    observed = [Observed(f"r{i}", f"t{i}", streams=[Stream(0, 0)]) for i in range(5)]
    plan = build(settings, observed, 24)
    assert plan.calls_per_hour == 5 * 60 + 1
    # 5 × 60/m + 1 <= 100 first holds at m = 4 (76): the line names it
    assert plan.problems == [plan.problems[0]] and "to 4," in plan.problems[0]
    assert math.isclose(build(settings.replace(schedule_backlog_minutes=4), observed, 24).calls_per_hour, 76)


def _netops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    child.update(env, NETOPS_CONFIG="")
    return subprocess.run([sys.executable, "-m", "netops", *args], env=child, text=True, capture_output=True,
                          cwd=REPO, timeout=120)


def test_check_refuses_a_schedule_that_does_not_fit_in_one_line(sim: Any, pg_dsn: str, tmp_path: Path) -> None:
    # 5 resources × 60 passes an hour = 300 calls against 30 an hour
    bad = _netops(_env(sim, pg_dsn, tmp_path, NETOPS_RATE_PER_HOUR=30, NETOPS_SCHEDULE_BACKLOG_MINUTES=1),
                  "plan", "--check")
    assert bad.returncode == 3, bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and bad.stdout == ""
    # 300/m + 1 <= 30 first holds at m = 12 (one of the cron-friendly choices)
    assert lines[0].startswith("Error: the schedule needs 301 API calls/hour against a budget of 30/hour")
    assert "raise schedule_backlog_minutes (NETOPS_SCHEDULE_BACKLOG_MINUTES" in lines[0] and "to 12," in lines[0]
    good = _netops(_env(sim, pg_dsn, tmp_path), "plan", "--check")
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("plan: fits: 61 of 1,200 calls/hour")
    shown = _netops(_env(sim, pg_dsn, tmp_path), "plan", "--json")
    assert shown.returncode == 0 and '"fits": true' in shown.stdout


PLAYBOOK = """\
- name: Preflight only
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The role's preflight checks
      ansible.builtin.import_role:
        name: netops
        tasks_from: preflight.yml
"""


def _preflight(tmp_path: Path, sim: Any, pg_dsn: str, **role: Any) -> subprocess.CompletedProcess[str]:
    yaml = pytest.importorskip("yaml")
    pytest.importorskip("ansible")
    import getpass

    (tmp_path / "play.yml").write_text(PLAYBOOK)
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump({
        "netops_client_id": "id", "netops_client_secret": "secret", "netops_db_password": "pw",
        "netops_source_dir": str(REPO), "ansible_python_interpreter": sys.executable,
        "netops_health_bin": str(Path(sys.executable).parent / "netops"), "netops_health_config": "",
        "netops_health_run_as": getpass.getuser(),
        "netops_health_environment": {k: v for k, v in _env(sim, pg_dsn, tmp_path).items()},
        **role}))
    vars_file.chmod(0o600)
    exe = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    return subprocess.run([exe, "-i", "localhost,", "-e", f"@{vars_file}", str(tmp_path / "play.yml")],
                          cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)


def test_role_preflight_fails_the_play_on_a_schedule_that_does_not_fit(sim: Any, pg_dsn: str,
                                                                      tmp_path: Path) -> None:
    bad = _preflight(tmp_path, sim, pg_dsn, netops_rate_per_hour=30, netops_schedule_backlog_minutes=1)
    assert bad.returncode == 2, bad.stdout[-3000:]
    assert "the schedule needs 301 API calls/hour against a budget of 30/hour" in bad.stdout
    assert "netops_schedule_backlog_minutes) to 12" in bad.stdout
    good = _preflight(tmp_path, sim, pg_dsn)
    assert good.returncode == 0 and "failed=0" in good.stdout, good.stdout[-3000:]


def test_a_long_listing_is_walked_page_after_page() -> None:
    """The pass lasts at least its longest listing's pages × the detect calls' round trip."""
    from netops.config import load_settings

    settings = load_settings(env={"NETOPS_CLIENT_ID": "x", "NETOPS_CLIENT_SECRET": "y"}, config_path="")
    observed = [Observed("locations", "locations", streams=[Stream(3000, 0), Stream(40, 0)]),
                Observed("events", "events", streams=[Stream(0, 0)])]
    paced = build(settings, observed, 24)
    assert paced.pass_calls == 30 + 1 + 1
    assert paced.pass_seconds == pytest.approx(32 / (2 / 1.05), abs=0.1)   # the budget's pace
    slow = build(settings, observed, 24, round_trip=1.1)
    assert slow.pass_seconds == pytest.approx(30 * 1.1, abs=0.1)            # 30 pages, one after the other
    assert slow.resources[0].freshness_seconds == pytest.approx(300 + 60 + 33, abs=0.2)
