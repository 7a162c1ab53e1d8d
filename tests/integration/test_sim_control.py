"""The control API (delete, modify, churn, expected, reset, stats) and the `netops sim serve` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from netops.sim import SimConfig, SimControl, SimServer
from netops.sim.timeutil import parse
from tests.fixtures.sim import TestSim

NETOPS = [sys.executable, "-c", "from netops.cli import main; main()"]


def auth(sim: TestSim) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.token()}"}


def test_delete_campus_over_http_cascades(sim: TestSim) -> None:
    ctl = SimControl(sim.url)
    before = ctl.expected()
    cid = ctl.expected_table("campuses")["keys"][0][0]
    mirrored_links = sum(1 for c, _ in ctl.expected_table("campus_projects")["keys"] if c == cid)
    removed = ctl.delete("campuses", cid)
    assert removed["campuses"] == 1 and removed["campus_projects"] > 0 and removed["campus_achievements"] > 0
    after = ctl.expected()
    assert after["campuses"] == 53
    # `removed` also counts links of projects outside cursus 21, which the mirror never had
    assert removed["campus_projects"] >= mirrored_links > 0
    assert after["campus_projects"] == before["campus_projects"] - mirrored_links
    assert after["campus_achievements"] == before["campus_achievements"] - removed["campus_achievements"]
    h = auth(sim)
    assert requests.get(f"{sim.url}/v2/campus/{cid}", headers=h).status_code == 404
    assert requests.get(f"{sim.url}/v2/campus/{cid}/achievements", headers=h).status_code == 404
    page = requests.get(f"{sim.url}/v2/cursus/21/projects", headers=h, params={"page[size]": 100}).json()
    assert all(c["id"] != cid for p in page for c in p["campus"])
    r = requests.post(f"{sim.url}/_sim/delete", json={"resource": "campuses", "id": cid})
    assert r.status_code == 404
    r = requests.post(f"{sim.url}/_sim/delete", json={"resource": "planets", "id": 1})
    assert r.status_code == 400


def test_delete_project_takes_sessions_and_links(sim: TestSim) -> None:
    pid = sim.expected_table("projects")["keys"][0][0]
    before = sim.expected()
    removed = sim.delete("projects", pid)
    after = sim.expected()
    assert after["projects"] == 518
    assert after["project_sessions"] == before["project_sessions"] - removed.get("project_sessions", 0)
    assert after["campus_projects"] < before["campus_projects"]
    assert requests.get(f"{sim.url}/v2/projects/{pid}", headers=auth(sim)).status_code == 404
    sim.delete("campus_projects", sim.expected_table("campus_projects")["keys"][0])
    assert sim.expected()["campus_projects"] == after["campus_projects"] - 1


def test_modify_touch_moves_updated_at_only_when_asked(sim: TestSim) -> None:
    ctl = SimControl(sim.url)
    h = auth(sim)
    pid = sim.expected_table("projects")["keys"][5][0]
    old = requests.get(f"{sim.url}/v2/projects/{pid}", headers=h).json()
    row = ctl.modify("projects", pid, {"name": "renamed quietly"}, touch=False)
    assert row["name"] == "renamed quietly" and row["updated_at"] == old["updated_at"]
    row = ctl.modify("projects", pid, {"difficulty": 7}, touch=True)
    assert parse(row["updated_at"]) > parse(old["updated_at"]) and abs(parse(row["updated_at"]) / 1000 - time.time()) < 5
    now_api = requests.get(f"{sim.url}/v2/projects/{pid}", headers=h).json()
    assert now_api["difficulty"] == 7 and now_api["name"] == "renamed quietly"
    assert [r for r in sim.expected_table("projects")["rows"] if r["id"] == pid][0]["difficulty"] == 7
    cid = sim.expected_table("campuses")["keys"][0][0]
    sim.modify("campuses", cid, {"active": False})
    assert sim.expected()["campuses"] == 53  # leaves the mirrored set
    r = requests.post(f"{sim.url}/_sim/modify", json={"resource": "users", "id": 1, "fields": {}})
    assert r.status_code == 404


def test_precise_change_set(sim: TestSim) -> None:
    ctl = SimControl(sim.url)
    uid = sim.expected_table("users")["keys"][0][0]
    victim = sim.expected_table("users")["keys"][1][0]
    before = ctl.expected()
    applied = ctl.churn(changes=[
        {"op": "update", "resource": "users", "id": uid, "fields": {"location": "e1r1p1"}},
        {"op": "insert", "resource": "users", "fields": {"login": "newbie"}},
        {"op": "insert", "resource": "coalitions_users", "fields": {"user_id": uid}},
        {"op": "delete", "resource": "users", "id": victim},
    ])
    assert [a["op"] for a in applied] == ["update", "insert", "insert", "delete"]
    new_id = applied[1]["id"]
    after = ctl.expected()
    assert after["users"] == before["users"]  # one in, one out
    assert after["coalitions_users"] == before["coalitions_users"] + 1 - applied[3]["cascade"].get("coalitions_users", 0)
    h = auth(sim)
    u = requests.get(f"{sim.url}/v2/users/{uid}", headers=h).json()
    assert u["location"] == "e1r1p1" and abs(parse(u["updated_at"]) / 1000 - time.time()) < 5
    assert requests.get(f"{sim.url}/v2/users/{new_id}", headers=h).json()["login"] == "newbie"
    assert requests.get(f"{sim.url}/v2/users/newbie", headers=h).json()["id"] == new_id
    assert requests.get(f"{sim.url}/v2/users/{victim}", headers=h).status_code == 404
    assert requests.get(f"{sim.url}/v2/users/{victim}/projects_users", headers=h).status_code == 404
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    changed = requests.get(f"{sim.url}/v2/users", headers=h,
                           params={"range[updated_at]": f"{since},2100-01-01T00:00:00Z"}).json()
    assert {c["id"] for c in changed} == {uid, new_id}


def test_random_churn_moves_updated_at_and_is_seeded(sim: TestSim) -> None:
    first = sim.churn(30)
    assert len(first) == 30 and {c["op"] for c in first} <= {"update", "insert", "delete"}
    assert {c["resource"] for c in first} <= {"users", "projects_users", "achievements_users", "coalitions_users"}
    h = auth(sim)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    changed = set()
    for res in ("users", "projects_users", "achievements_users", "coalitions_users"):
        rows = requests.get(f"{sim.url}/v2/{res}", headers=h,
                            params={"range[updated_at]": f"{since},2100-01-01T00:00:00Z", "page[size]": 100}).json()
        changed |= {(res, r["id"]) for r in rows}
    touched = {(c["resource"], c["id"]) for c in first if c["op"] in ("update", "insert")}
    assert touched and touched <= changed
    sim.reset()
    again = sim.churn(30)
    assert [(c["op"], c["resource"], c["id"]) for c in again] == [(c["op"], c["resource"], c["id"]) for c in first]
    r = requests.post(f"{sim.url}/_sim/churn", json={"n": 5})
    assert r.status_code == 200 and len(r.json()["applied"]) == 5


def test_background_churn_thread() -> None:
    with SimServer(SimConfig(port=0, backlog_scale=0.01, churn_per_minute=1200, rate_per_second=0)) as srv:
        time.sleep(0.6)
        applied = len(srv.churn_log)
    assert 4 <= applied <= 20


def test_expected_endpoints_and_reset(sim: TestSim) -> None:
    exp = requests.get(f"{sim.url}/_sim/expected").json()
    assert set(exp) == {"cursus", "campuses", "projects", "coalitions", "achievements", "campus_projects",
                        "campus_achievements", "project_sessions", "users", "project_users",
                        "achievements_users", "coalitions_users", "cursus_users",
                        # the campus-scoped tables (netops/sim/campus.py)
                        "locations", "teams", "teams_users", "scale_teams", "events", "exams"}
    cp = requests.get(f"{sim.url}/_sim/expected/campus_projects").json()
    assert cp["primary_key"] == ["campus_id", "project_id"] and cp["count"] == 20937 == len(cp["keys"])
    assert cp["keys"] == sorted(cp["keys"])
    camp = requests.get(f"{sim.url}/_sim/expected/campuses").json()
    assert {"id", "name", "language_id", "language_name", "active", "public"} <= set(camp["rows"][0])
    assert len(camp["fingerprints"]) == 54 == len(set(camp["fingerprints"]))
    sim.modify("campuses", camp["keys"][0][0], {"city": "Elsewhere"})
    assert sim.expected_table("campuses")["fingerprints"][1:] == camp["fingerprints"][1:]
    assert sim.expected_table("campuses")["fingerprints"][0] != camp["fingerprints"][0]
    sim.reset()
    users = requests.get(f"{sim.url}/_sim/expected/users").json()
    assert users["count"] == exp["users"] and "rows" not in users
    assert requests.get(f"{sim.url}/_sim/expected/nope").status_code == 404
    sim.delete("coalitions", sim.expected_table("coalitions")["keys"][0][0])
    sim.add_fault("500")
    sim.configure(latency=0.2, rate_per_second=1)
    assert requests.post(f"{sim.url}/_sim/reset").status_code == 200
    assert requests.get(f"{sim.url}/_sim/expected").json() == exp
    h = auth(sim)
    started = time.monotonic()
    assert [requests.get(f"{sim.url}/v2/cursus", headers=h).status_code for _ in range(3)] == [200, 200, 200]
    assert time.monotonic() - started < 0.5
    stats = requests.get(f"{sim.url}/_sim/stats").json()
    assert stats["by_endpoint"] == {"/oauth/token": 1, "/v2/cursus": 3} and stats["by_status"] == {"200": 4}
    requests.post(f"{sim.url}/_sim/stats/reset")
    assert requests.get(f"{sim.url}/_sim/stats").json()["total"] == 0


def test_no_control_flag_hides_control_api() -> None:
    with SimServer(SimConfig(port=0, backlog_scale=0.0, control=False)) as srv:
        assert requests.get(f"{srv.url}/_sim/expected").status_code == 404
        assert srv.expected()["users"] == 0


def test_cli_serve_ready_line_ready_file_env_secret_and_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    env = {**os.environ, "NETOPS_SIM_CLIENT_SECRET": "from-env"}
    proc = subprocess.Popen(
        [*NETOPS, "sim", "serve", "--port", "0", "--backlog-scale", "0.01", "--ready-file", str(ready),
         "--fault", "503@/v2/cursus,count=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert line.startswith("netops-sim listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert ready.read_text().strip() == url
        form = {"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "from-env"}
        tok = requests.post(f"{url}/oauth/token", data=form, timeout=5).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        assert requests.get(f"{url}/v2/cursus", headers=h, timeout=5).status_code == 503
        r = requests.get(f"{url}/v2/cursus", headers=h, timeout=5)
        assert r.status_code == 200 and r.headers["X-Secondly-RateLimit-Limit"] == "2"
        out = subprocess.run([*NETOPS, "sim", "expected", "--url", url], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and '"campus_projects": 20937' in out.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
    assert rc == 0
    assert proc.stdout.read() == ""  # type: ignore[union-attr]  # exactly one line on stdout


def test_cli_rejects_bad_fault_spec() -> None:
    out = subprocess.run([*NETOPS, "sim", "serve", "--fault", "teapot"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "unknown fault kind" in out.stderr
    helptext = subprocess.run([*NETOPS, "sim", "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    for opt in ("--client-secret", "NETOPS_SIM_CLIENT_SECRET", "--rate-per-hour", "--latency", "--churn",
                "--backlog-scale", "--live-scale", "--fault", "--no-control", "--ready-file", "--token-ttl", "--secret-valid-days"):
        assert opt in helptext
