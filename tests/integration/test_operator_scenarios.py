"""Operator scenarios end to end (issue 13): real `netops` subprocesses, a real PostgreSQL, the
simulator over HTTP. Each test asserts what netops *says* — headline, exit code, alert state, log
line — in a situation an operator meets: a sync interrupted or killed, refused credentials, a
revoked token, a stopped database, a typo in the config."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netops.config import Settings
from netops.pipeline.stable.phases import PHASE_NAMES
from tests.fixtures.pg import query
from tests.integration.test_monitor_seed import cli_env


def netops_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update(cli_env(settings))
    env.update(extra)
    return env


def netops(settings: Settings, *args: str, cwd: Path | None = None, timeout: float = 120,
           **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netops", *args], env=netops_env(settings, **extra),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def start_sync(settings: Settings, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "netops", "sync", "stable", "--no-progress"],
                            env=netops_env(settings, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_running(dsn: str, proc: subprocess.Popen[str], phase_min: str = "campuses", limit: float = 60) -> None:
    """Until the sync has a `running` row at or past `phase_min` (it is mid-run, calls in flight)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        rows = query(dsn, "SELECT phase FROM netops.sync_runs WHERE status = 'running'") \
            if query(dsn, "SELECT to_regclass('netops.sync_runs') IS NOT NULL")[0][0] else []
        if rows and PHASE_NAMES.index(rows[0][0]) >= PHASE_NAMES.index(phase_min):
            return
        time.sleep(0.1)
    raise AssertionError("the sync never reached a running phase")


@pytest.fixture
def slow_settings(settings_factory: Callable[..., Settings], sim: Any) -> Settings:
    """A sync paced at 4 calls/s: long enough (well over ten seconds) to be caught mid-run."""
    return settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                            NETOPS_CLIENT_SECRET=sim.client_secret, NETOPS_RATE_PER_SECOND=4,
                            NETOPS_RATE_PER_HOUR=100000, NETOPS_ALERT_CALLS_PER_MIN=100000)


# --- finding 1: an interrupted sync leaves no ghost ----------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_the_run_promptly_and_records_it(slow_settings: Settings, sig: signal.Signals) -> None:
    settings = slow_settings
    proc = start_sync(settings)
    wait_running(settings.dsn, proc)
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    print(f"{sig.name}: the sync ended {took:.2f}s after the signal")  # the figure for BENCHMARKS.md
    assert proc.returncode == 128 + sig, (out, err)
    assert took < 4.0, f"the sync took {took:.1f}s to stop after {sig.name}"
    assert f"stopped by {sig.name}" in err and err.count("\n") == 1, err  # one line
    statuses = dict(query(settings.dsn, "SELECT status, count(*) FROM netops.sync_runs GROUP BY 1"))
    assert "running" not in statuses and statuses.get("interrupted") == 1, statuses
    log = (settings.log_path / "nightly_stable_tables.log").read_text()
    assert f"Sync interrupted by {sig.name} during" in log

    status = netops(settings, "status", "--json", NETOPS_ALERT_SYNC_SECONDS="0")
    doc = json.loads(status.stdout)
    assert doc["last_sync"]["status"] == "interrupted"
    checks = {p["check"] for p in doc["problems"]}
    assert "sync_interrupted" in checks and "sync_duration" not in checks
    assert status.returncode == 2  # the phases after it never synced: sync_age says critical


def test_killed_sync_is_recognised_dead_at_once(slow_settings: Settings) -> None:
    settings = slow_settings
    proc = start_sync(settings)
    wait_running(settings.dsn, proc)
    proc.kill()
    proc.wait(timeout=10)
    # the row still says running (nobody could write otherwise) ...
    assert query(settings.dsn, "SELECT count(*) FROM netops.sync_runs WHERE status = 'running'")[0][0] == 1
    # ... but the monitor sees the lock is gone: interrupted, never a stuck sync_duration
    doc: dict[str, Any] = {}
    for _ in range(20):  # PostgreSQL drops the dead session's lock as soon as it sees the socket close
        doc = json.loads(netops(settings, "status", "--json", NETOPS_ALERT_SYNC_SECONDS="0").stdout)
        if doc["last_sync"]["status"] == "interrupted":
            break
        time.sleep(0.1)
    assert doc["last_sync"]["status"] == "interrupted", doc["last_sync"]
    assert doc["last_sync"]["lock_held"] is False
    assert "interrupted" in [p["last_status"] for p in doc["phases"]]
    assert "sync_duration" not in {p["check"] for p in doc["problems"]}
    text = netops(settings, "status", NETOPS_ALERT_SYNC_SECONDS="0").stdout
    assert "last sync   interrupted" in text and "stuck call" not in text
    alerts = json.loads(netops(settings, "alerts", "check", "--json", NETOPS_ALERT_SYNC_SECONDS="0").stdout)
    assert {a["name"]: a["state"] for a in alerts["alerts"]}["sync_duration"] == "ok"
    # the next sync tidies the row up as interrupted too (not "failed")
    rerun = netops(settings, "sync", "stable", "--no-progress", NETOPS_RATE_PER_SECOND="500")
    assert rerun.returncode == 0, rerun.stderr
    assert query(settings.dsn, "SELECT count(*) FROM netops.sync_runs WHERE status = 'interrupted'")[0][0] == 1


# --- findings 2, 3, 5: credentials -------------------------------------------------------------

@pytest.fixture
def fast_settings(settings_factory: Callable[..., Settings], sim: Any) -> Settings:
    return settings_factory(NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id,
                            NETOPS_CLIENT_SECRET=sim.client_secret, NETOPS_RATE_PER_SECOND=500,
                            NETOPS_RATE_PER_HOUR=100000, NETOPS_ALERT_CALLS_PER_MIN=100000)


def token_calls(dsn: str) -> list[tuple[int | None, str]]:
    return query(dsn, "SELECT status, component FROM netops.api_calls WHERE endpoint = '/oauth/token' ORDER BY at")


def test_refused_credentials_count_as_401_once_per_run(fast_settings: Settings) -> None:
    settings = fast_settings
    bad = {"NETOPS_CLIENT_SECRET": "not-the-secret"}
    sync = netops(settings, "sync", "stable", "--no-progress", **bad)
    assert sync.returncode != 0 and "credentials refused" in sync.stderr
    # every phase fetches in its own thread, yet the run asked once: no burst of refused requests
    assert token_calls(settings.dsn) == [(401, "stable")]

    alerts = json.loads(netops(settings, "alerts", "check", "--json", **bad).stdout)
    assert "api_unauthorized" in alerts["firing"]
    status = netops(settings, "status", "--json", **bad)
    doc = json.loads(status.stdout)
    assert doc["api"]["unauthorized_last_hour"] == 1
    assert status.returncode == 2 and "api_unauthorized" in doc["alerts"]["firing"]
    metrics = netops(settings, "metrics", "export", **bad).stdout
    assert 'netops_api_calls_last_hour{code="401"} 1.0' in metrics
    assert 'netops_api_calls_total{code="401",endpoint="/oauth/token"} 1.0' in metrics
    assert 'netops_alert_firing{alert="api_unauthorized",severity="critical"} 1.0' in metrics


def test_a_changed_secret_is_not_hidden_by_the_cached_token(fast_settings: Settings) -> None:
    settings = fast_settings
    assert netops(settings, "sync", "stable", "--no-progress").returncode == 0
    stored = json.loads(settings.token_file.read_text())
    assert settings.client_secret not in json.dumps(stored)  # a fingerprint, never the secret
    assert len(stored["credential_fp"]) == 64

    # the operator sets a wrong secret while the old token still has ~2 h: the next run must say so
    sync = netops(settings, "sync", "stable", "--no-progress", "--phase", "cursus",
                  NETOPS_CLIENT_SECRET="rotated-wrong")
    assert sync.returncode != 0, sync.stdout
    assert "credentials refused" in sync.stderr
    assert token_calls(settings.dsn)[-1] == (401, "stable")


def test_a_refused_token_shows_in_token_status_and_refresh_replaces_it(fast_settings: Settings, sim: Any) -> None:
    settings = fast_settings
    assert netops(settings, "sync", "stable", "--no-progress").returncode == 0
    assert netops(settings, "token", "status").returncode == 0
    sim.revoke_tokens()
    sim.add_fault("500@/oauth/token,count=3")  # the refresh after the 401 fails: the revoked token stays
    sync = netops(settings, "sync", "stable", "--no-progress", "--phase", "cursus")
    assert sync.returncode != 0

    st = netops(settings, "token", "status")
    assert st.returncode == 1 and "REFUSED" in st.stdout, st.stdout
    status = json.loads(netops(settings, "status", "--json").stdout)
    assert status["token"]["refused_at"] and "token" in status["alerts"]["firing"]

    # what the 401 alert says to run works as written: no --force needed
    refresh = netops(settings, "token", "refresh")
    assert refresh.returncode == 0 and "refreshed:  yes" in refresh.stdout, refresh.stdout + refresh.stderr
    assert netops(settings, "token", "status").returncode == 0
    assert "Token refused by the API" in (settings.log_path / "42_token_refresh.log").read_text()


# --- finding 4: status, alerts, metrics and the dashboard give one verdict, made now ----------

def test_every_view_gives_the_same_verdict_now(fast_settings: Settings, sim: Any) -> None:
    settings = fast_settings
    sim.add_fault("429@/v2/coalitions,count=2,seconds=1")
    assert netops(settings, "sync", "stable", "--no-progress").returncode == 0
    # no `alerts check` has run: status must not show a stored "none", nor exit 0
    status = netops(settings, "status")
    assert status.returncode == 1, status.stdout
    assert "alerts      firing now: api_rate_limited" in status.stdout
    assert status.stdout.startswith("netops status: WARNING")
    doc = json.loads(netops(settings, "status", "--json").stdout)
    alerts = netops(settings, "alerts", "check", "--json")
    adoc = json.loads(alerts.stdout)
    assert alerts.returncode == 1
    assert doc["alerts"]["firing"] == adoc["firing"] == ["api_rate_limited"]
    assert [p["check"] for p in doc["problems"]] == ["api_rate_limited"]
    metrics = netops(settings, "metrics", "export").stdout
    assert 'netops_alert_firing{alert="api_rate_limited",severity="warning"} 1.0' in metrics
    assert 'netops_alert_firing{alert="sync_age",severity="critical"} 0.0' in metrics
    dash = netops(settings, "dashboard")  # into a pipe: one frame (finding 7), same verdict
    assert dash.returncode == 0
    assert "WARNING" in dash.stdout.splitlines()[0] and "api_rate_limited" in dash.stdout


# --- finding 9: the demo's follow-up commands work as printed; one exit code per missing setting

REPO = Path(__file__).resolve().parents[2]


def test_demo_follow_up_commands_work_exactly_as_printed(tmp_path: Path) -> None:
    from tests.fixtures.pg import _world_traversable_tmpdir

    state = _world_traversable_tmpdir("netops-demo-") / "state"  # root: the embedded server's user enters it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update({"NETOPS_STATE_DIR": str(state), "DEMO_RATE": "50"})
    demo = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    sim_pid = None
    try:
        assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
        tail = demo.stdout.split("\nDone.", 1)[1]
        sim_pid = int((state / "demo-sim.pid").read_text())
        lines = [line.strip() for line in tail.splitlines()]
        source = next(line for line in lines if line.startswith(". "))
        commands = [line.split("  #")[0].strip() for line in lines if line.startswith(".venv/bin/netops")]
        assert len(commands) >= 5 and any("sync stable" in c for c in commands) and \
            any("token status" in c for c in commands)
        for command in commands:
            # a fresh shell in the repo, as the operator would type it: the demo's own variables are gone
            run = subprocess.run(["bash", "-c", f"{source} && {command}"], cwd=REPO, capture_output=True,
                                 text=True, timeout=300,
                                 env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")})
            assert run.returncode == 0, (command, run.stdout[-1500:], run.stderr[-1500:])
            if "status" in command.split()[1:2]:
                assert "netops status: OK" in run.stdout
        stop = next(line for line in lines if line.startswith("kill "))
        sim_pid_printed = int(stop.split()[1].rstrip(";"))
        assert sim_pid_printed == sim_pid
    finally:
        if sim_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(sim_pid, signal.SIGTERM)
        subprocess.run([str(REPO / ".venv/bin/netops"), "db", "down"], env={**env, "NETOPS_CONFIG": ""},
                       capture_output=True, timeout=120)


def test_a_missing_setting_is_the_same_error_everywhere(settings_factory: Callable[..., Settings],
                                                        sim: Any) -> None:
    settings = settings_factory(NETOPS_API_URL=sim.url)  # no NETOPS_CLIENT_ID, no secret
    results = {args: netops(settings, *args) for args in
               [("sync", "stable", "--no-progress"), ("token", "refresh"), ("backlog", "detect")]}
    lines = {args: r.stderr.strip() for args, r in results.items()}
    for args, r in results.items():
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert "NETOPS_CLIENT_ID is not set" in lines[args] and lines[args].count("\n") == 0, lines[args]
    # a configuration error is not a sync that ran and failed: nothing is recorded
    assert query(settings.dsn, "SELECT count(*) FROM netops.sync_runs")[0][0] == 0


# --- finding 11: the status page (roles/nginx/templates/index.html.j2) -------------------------

def page_says(doc: dict[str, Any], now_ms: float | None = None) -> dict[str, str]:
    """Run the status page's own script (rendered by Jinja as Ansible does) in node on `doc`."""
    import re
    import shutil

    import jinja2

    html = jinja2.Template((REPO / "roles/nginx/templates/index.html.j2").read_text()).render(
        inventory_hostname="box", ansible_managed="test")
    script = re.search(r"<script>(.*)</script>", html, re.S).group(1)  # type: ignore[union-attr]
    node = shutil.which("node")
    assert node, "node is needed to run the status page's script"
    now = "Date.now()" if now_ms is None else repr(now_ms)
    prog = f"{script}\nconsole.log(JSON.stringify(describe({json.dumps(doc)}, {now})));"
    out = subprocess.run([node, "-e", prog], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_status_page_says_critical_unknown_and_stale(settings_factory: Callable[..., Settings]) -> None:
    from tests.integration.test_monitor_seed import healthy, insert_calls

    settings = settings_factory()
    healthy(settings.dsn, settings)
    insert_calls(settings.dsn, {401: 1})  # a refused call: the critical api_unauthorized alert fires
    doc = json.loads(netops(settings, "status", "--json").stdout)
    said = page_says(doc)
    assert said["state"] == "critical" and said["cls"] == "critical", said
    assert "api_unauthorized" in said["alerts"] and not said["stale"]

    # a status.json cron stopped writing ten minutes ago: not today's verdict
    checked = json.loads(json.dumps(doc))
    from datetime import datetime
    at = datetime.fromisoformat(checked["checked_at"].replace("Z", "+00:00")).timestamp() * 1000
    said = page_says(checked, at + 600_000)
    assert said["state"].startswith("unknown (stale") and "10 min ago" in said["stale"], said

    # the database down: the backlog is unknown, not "not set up"
    down = settings_factory(NETOPS_DSN="postgresql://nobody@127.0.0.1:1/x")
    ddoc = json.loads(netops(down, "status", "--json").stdout)
    assert ddoc["backlog"]["available"] is None and ddoc["backlog"]["pending"] is None
    said = page_says(ddoc)
    assert said["backlog"] == "Backlog: unknown (database unreachable)." and said["state"] == "critical"


# --- finding 6: the log dir does not depend on where the command is run ------------------------

def test_default_log_dir_is_the_same_from_any_directory(settings_factory: Callable[..., Settings],
                                                        tmp_path: Path) -> None:
    settings = settings_factory()
    env = netops_env(settings)
    del env["NETOPS_LOG_DIR"]
    expected = "/var/log/netops" if os.geteuid() == 0 else str(settings.state_path / "logs")
    seen = set()
    for cwd in (tmp_path, REPO, Path("/")):
        out = subprocess.run([sys.executable, "-m", "netops", "logs", "list", "--json"], env=env, cwd=cwd,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        seen.add(json.loads(out.stdout)["log_dir"])
        status = subprocess.run([sys.executable, "-m", "netops", "status", "--json"], env=env, cwd=cwd,
                                capture_output=True, text=True, timeout=60)
        seen.add(json.loads(status.stdout)["disk"]["log_dir"]["path"])
    assert seen == {expected}


# --- finding 7: the dashboard into a pipe or a file ---------------------------------------------

def test_dashboard_into_a_file_prints_one_frame_and_exits(settings_factory: Callable[..., Settings],
                                                          tmp_path: Path) -> None:
    settings = settings_factory()
    out_file = tmp_path / "frame.txt"
    with out_file.open("w") as fh:
        proc = subprocess.run([sys.executable, "-m", "netops", "dashboard"], env=netops_env(settings),
                              stdout=fh, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    frame = out_file.read_text()
    assert frame.startswith("netops ") and "cursus" in frame
    assert "\x1b[?1049h" not in frame  # no alternate screen: a plain frame for a file or cron mail
    down = settings_factory(NETOPS_DSN="postgresql://nobody@127.0.0.1:1/x")
    piped = netops(down, "dashboard", timeout=60)
    assert piped.returncode == 2 and "DOWN" in piped.stdout and "CRITICAL" in piped.stdout


# --- finding 8: one rule for starting the embedded database ------------------------------------

def test_looking_commands_never_start_the_embedded_database(tmp_path: Path) -> None:
    from netops.config import load_settings
    from netops.db.server import NEVER_START_EMBEDDED, LocalPostgres
    from tests.fixtures.pg import _world_traversable_tmpdir

    state = _world_traversable_tmpdir("netops-rule-") / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NETOPS_", "BACKLOG_"))}
    env.update({"NETOPS_CONFIG": "", "NETOPS_STATE_DIR": str(state), "NETOPS_LOG_DIR": str(tmp_path / "logs")})
    settings = load_settings(env=env, config_path="")
    server = LocalPostgres(settings)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "netops", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    try:
        assert run("db", "up").returncode == 0
        assert run("db", "migrate").returncode == 0
        assert run("db", "down").returncode == 0
        looking = {
            ("status",): 2, ("check",): 2, ("metrics", "export"): 0, ("metrics", "write"): 0,
            ("alerts", "check"): 1, ("dashboard",): 2, ("logs", "list"): 0, ("backlog", "status"): 1,
            ("db", "status"): 1, ("db", "shell", "-c", "SELECT 1"): 1, ("db", "dsn"): 1, ("token", "status"): 2,
        }
        assert {" ".join(a[:2]) if a[0] in ("metrics", "alerts", "backlog", "db", "token", "logs") else a[0]
                for a in looking} >= set(NEVER_START_EMBEDDED) - {"token refresh", "logs tail"}
        for args, code in looking.items():
            r = run(*args)
            assert r.returncode == code, (args, r.returncode, r.stdout[-500:], r.stderr[-500:])
            assert not server.is_running(), f"`netops {' '.join(args)}` started the embedded database"
        # what the looking commands say about it: down, and how to start it
        assert "netops db up" in run("status").stdout
        assert "netops db up" in run("backlog", "status").stderr
        # a command that writes starts it, and says so on stderr
        migrate = run("db", "migrate")
        assert migrate.returncode == 0 and "started the embedded PostgreSQL" in migrate.stderr
        assert server.is_running()
    finally:
        run("db", "down")


# --- finding 10: messages ------------------------------------------------------------------------

def test_messages_name_the_problem_and_the_fix(settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    settings = settings_factory()
    typo = tmp_path / "netops.toml"
    typo.write_text('log_dri = "/tmp/x"\n')
    r = netops(settings, "--config", str(typo), "status", NETOPS_CONFIG=str(typo))
    line = r.stderr.strip()
    assert r.returncode == 2 and line.count("\n") == 0 and "did you mean 'log_dir'?" in line, line
    assert len(line) < 200  # the closest key, not all of them

    r = netops(settings, "--config", str(tmp_path / "missing.toml"), "status")
    assert r.returncode == 2 and "--config" in r.stderr and "NETOPS_CONFIG" not in r.stderr, r.stderr
    r = netops(settings, "status", NETOPS_CONFIG=str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and "NETOPS_CONFIG=" in r.stderr, r.stderr

    for bad in ("host=/tmp dbname", "postgresql://u:s3cr3t@h/db?sslmode"):
        r = netops(settings, "status", NETOPS_DSN=bad)
        line = r.stderr.strip()
        assert r.returncode == 2 and line.count("\n") == 0, line
        assert "NETOPS_DSN" in line and "cannot be parsed" in line and "postgresql://" in line, line
        assert "nothing was committed" not in line and "s3cr3t" not in line


def test_backlog_success_rate_agrees_with_its_failures(settings_factory: Callable[..., Settings]) -> None:
    from tests.integration.test_monitor_seed import insert_backlog

    settings = settings_factory()
    insert_backlog(settings.dsn, {"done": 2000, "failed": 1})
    query(settings.dsn, "UPDATE netops.backlog_items SET finished_at = now(), started_at = now() "
                        "WHERE state IN ('done', 'failed')")
    out = netops(settings, "backlog", "status").stdout
    assert "success rate: 100.0%" not in out and "success rate: >99.9% today (2,000 done, 1 failed" in out, out
    assert "failed:       1 (all time; 1 today)" in out


def test_observability_doc_gives_one_calls_per_minute_threshold() -> None:
    import re

    from netops.config import FIELDS

    default = next(f.default for f in FIELDS if f.name == "alert_calls_per_min")
    text = (REPO / "docs/observability.md").read_text()
    # every place the doc shows the threshold: the settings table, sample outputs, log lines
    shown = [float(x) for x in re.findall(r"`NETOPS_ALERT_CALLS_PER_MIN` \((\d+)", text)]
    shown += [float(x) for x in re.findall(r"/ (\d+(?:\.\d+)?) calls/min", text)]
    shown += [float(x) for x in re.findall(r"calls/min \((?:threshold|floor) (\d+(?:\.\d+)?)", text)]
    shown += [float(x) for x in re.findall(r"default of (\d+) calls/min", text)]
    assert len(shown) >= 3 and set(shown) == {default}, shown
