"""Both alert paths end to end, with the real parts: Debian's `prometheus` scraping netops'
metrics file over HTTP and evaluating `netops alerts rules`, Debian's `prometheus-alertmanager`
routing with the role's example configuration (templates/alertmanager.yml.j2), and netops' own
`netops alerts check --loop` — each POSTing to a webhook receiver on loopback, which records
exactly what arrives.

The box is driven through the issue's bad hour: a first burst of 429s, the metrics endpoint
down while alerts fire, the database down, and the hourly budget spent by a job that then waits.
Intervals are scaled down so it takes about two minutes (deployed values in parentheses):
scrape and evaluation 1 s (15 s), `for` 2 s (1m), keep_firing_for 20 s (3m), a scrape gap of
10 s (90 s: the same share of keep_firing_for), Alertmanager group_wait 1 s / group_interval 2 s
(10 s / 1m), netops' loop every 2 s (30 s), metrics rewritten every second (60 s).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import psycopg2
import pytest
import yaml

from netops.config import load_settings
from netops.db.migrate import migrate
from netops.db.server import LocalPostgres
from netops.monitor.alerts import prometheus_rules
from tests.fixtures.pg import _world_traversable_tmpdir
from tests.integration.test_monitor_seed import cli_env

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager")
AMTOOL = shutil.which("amtool")
pytestmark = pytest.mark.skipif(
    None in (PROMETHEUS, ALERTMANAGER, AMTOOL),
    reason="prometheus / prometheus-alertmanager not installed: "
           "`apt-get install -y prometheus prometheus-alertmanager` (scripts/test.sh does it)")

#: the scaled schedule (module docstring); the bench uses the deployed one
SCRAPE = "1s"
FOR = "2s"
KEEP_FIRING_FOR = 20.0
GAP = 10.0
DB_DOWN = 8.0
LOOP_INTERVAL = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, pred: Callable[[], Any], timeout: float = 30.0, step: float = 0.25) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@dataclass
class Hook:
    """A webhook receiver on 127.0.0.1: every POSTed JSON document and every GET path, with the
    monotonic time it arrived."""

    posts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    gets: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                hook.gets.append((time.monotonic(), self.path))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MetricsEndpoint:
    """What nginx does on a deployed box: serves the metrics dir's metrics.prom at /metrics.
    stop() makes the port refuse connections (a scrape gap); start() serves again on it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        directory = self.directory

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                try:
                    body = (directory / "metrics.prom").read_bytes()
                except OSError:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def alertmanager_config(webhook_url: str, group_wait: str, group_interval: str) -> str:
    """The role's example configuration with only a webhook receiver, timings set for the run."""
    template = (REPO / "roles" / "netops" / "templates" / "alertmanager.yml.j2").read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
    env.filters["to_json"] = json.dumps
    text = env.from_string(template).render(
        netops_alertmanager_webhook_url=webhook_url, netops_alertmanager_discord_url="",
        netops_alertmanager_slack_url="", netops_alertmanager_slack_channel="#netops",
        netops_alertmanager_group_wait=group_wait)
    doc = yaml.safe_load(text)
    doc["route"]["group_interval"] = group_interval
    return yaml.safe_dump(doc, sort_keys=False)


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> float:
    """Signal one process we started (by its PID); seconds it took to exit."""
    if proc.poll() is not None:
        return 0.0
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - t0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(200 <= r.status < 300)
    except OSError:
        return False


@dataclass
class Stack:
    """Prometheus + Alertmanager + the metrics endpoint, on free loopback ports."""

    tmp: Path
    metrics_dir: Path
    rules: str
    am_hook: Hook
    scrape: str = SCRAPE
    group_wait: str = "1s"
    group_interval: str = "2s"
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.endpoint = MetricsEndpoint(self.metrics_dir)
        self.am_port, self.prom_port = free_port(), free_port()

    def up(self) -> None:
        self.endpoint.start()
        am_cfg = self.tmp / "alertmanager.yml"
        am_cfg.write_text(alertmanager_config(self.am_hook.url + "/am", self.group_wait, self.group_interval))
        checked = subprocess.run([str(AMTOOL), "check-config", str(am_cfg)], capture_output=True, text=True,
                                 timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        self.procs.append(start([str(ALERTMANAGER), f"--config.file={am_cfg}", f"--storage.path={self.tmp / 'am'}",
                                 f"--web.listen-address=127.0.0.1:{self.am_port}", "--cluster.listen-address="],
                                self.tmp / "alertmanager.log"))
        (self.tmp / "rules.yml").write_text(self.rules)
        (self.tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": self.scrape, "evaluation_interval": self.scrape,
                       "scrape_timeout": self.scrape},
            "rule_files": [str(self.tmp / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]},
            "scrape_configs": [{"job_name": "netops", "metrics_path": "/metrics",
                                "static_configs": [{"targets": [f"127.0.0.1:{self.endpoint.port}"],
                                                    "labels": {"instance": "box1"}}]}]}))
        self.procs.append(start([str(PROMETHEUS), f"--config.file={self.tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{self.prom_port}"], self.tmp / "prometheus.log"))
        wait_for("alertmanager ready", lambda: http_ok(f"http://127.0.0.1:{self.am_port}/-/ready"))
        wait_for("prometheus ready", lambda: http_ok(f"http://127.0.0.1:{self.prom_port}/-/ready"))

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            return list(json.loads(r.read())["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self, name: str) -> list[tuple[str, str]]:
        """(state, activeAt) of each of Prometheus' own alerts named `name` (a re-page shows as a new activeAt)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.prom_port}/api/v1/alerts", timeout=5) as r:
            return [(a["state"], a["activeAt"]) for a in json.loads(r.read())["data"]["alerts"]
                    if a["labels"]["alertname"] == name]

    def down(self) -> None:
        for p in reversed(self.procs):
            stop(p)
        self.endpoint.stop()


def am_events(hook: Hook) -> list[tuple[str, str]]:
    """(alertname, status) for each alert of each Alertmanager POST, in arrival order."""
    return [(a["labels"]["alertname"], a["status"]) for _, doc in hook.posts for a in doc.get("alerts", [])]


def netops_events(hook: Hook) -> list[tuple[str, str]]:
    return [(doc["alert"], doc["state"]) for _, doc in hook.posts if "alert" in doc]


def calls_by_code(dsn: str) -> dict[str, int]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(status::text, 'none'), count(*) FROM netops.api_calls GROUP BY 1")
        return dict(cur.fetchall())


def slots_last_hour(dsn: str) -> int:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM netops.api_slots WHERE at > now() - interval '1 hour'")
        return int(cur.fetchone()[0])


def netops_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "netops", *args]


@pytest.fixture
def own_pg() -> Iterator[LocalPostgres]:
    """A PostgreSQL server of this test's own (netops' embedded one), so stopping it for the
    outage leaves the session's server, and every other test's connection to it, alone."""
    state = _world_traversable_tmpdir("netops-test-pg-outage-")
    server = LocalPostgres(load_settings(env={"NETOPS_STATE_DIR": str(state), "NETOPS_LOG_DIR": str(state / "logs")},
                                         config_path=""))
    server.up()
    migrate(server.dsn(), state / "logs")
    yield server
    server.down()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def box(settings_factory: Callable[..., Any], sim: Any, tmp_path: Path,
        own_pg: LocalPostgres) -> Iterator[tuple[Any, dict[str, str], Hook]]:
    """A synced, healthy box (the simulator as its API, its own PostgreSQL), its subprocess
    environment, and the receiver netops' own loop posts to (webhook + heartbeat)."""
    hook = Hook()
    settings = settings_factory(
        NETOPS_DSN=own_pg.dsn(), NETOPS_API_URL=sim.url, NETOPS_CLIENT_ID=sim.client_id, NETOPS_CLIENT_SECRET=sim.client_secret,
        NETOPS_RATE_PER_SECOND=500, NETOPS_RATE_PER_HOUR=100000, NETOPS_METRICS_DIR=str(tmp_path / "web"),
        BACKLOG_METRIC_INTERVAL=1, NETOPS_ALERT_WEBHOOK_URL=hook.url + "/netops",
        NETOPS_ALERT_HEARTBEAT_URL=hook.url + "/hb")
    env = {**os.environ, **cli_env(settings)}
    first = subprocess.run(netops_cmd("sync", "stable", "--no-progress"), env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    yield settings, env, hook
    hook.close()


def test_both_paths_through_a_bad_hour(box: tuple[Any, dict[str, str], Hook], sim: Any, own_pg: LocalPostgres,
                                       tmp_path: Path) -> None:
    settings, env, hook = box
    rules = prometheus_rules(settings, for_=FOR, keep_firing_for=f"{KEEP_FIRING_FOR:g}s")
    am_hook = Hook()
    stack = Stack(tmp_path / "stack", tmp_path / "web", rules, am_hook)
    stack.tmp.mkdir()
    logs = tmp_path / "stack"
    writer = start(netops_cmd("metrics", "write", "--loop"), logs / "metrics.log", env)
    wait_for("metrics.prom", lambda: (tmp_path / "web" / "metrics.prom").exists())
    loop = start(netops_cmd("alerts", "check", "--loop", "--interval", f"{LOOP_INTERVAL:g}"), logs / "loop.log", env)
    stack.up()
    try:
        _drive(stack, settings, env, hook, am_hook, sim, own_pg)
        took = stop(loop, signal.SIGTERM)
        assert loop.returncode == 0 and took < 2.0, (loop.returncode, took)
        assert "alert loop ended: stopped by signal" in (logs / "loop.log").read_text()
    finally:
        stop(loop)
        stop(writer)
        stack.down()
        am_hook.close()


def _drive(stack: Stack, settings: Any, env: dict[str, str], hook: Hook, am_hook: Hook, sim: Any,
           db_server: LocalPostgres) -> None:
    # healthy: the target is up, the Grafana Verdict expression gives 0 (not "no data"), nothing sent
    wait_for("scrapes of the zero 429 series", lambda: (stack.value(
        'count_over_time(netops_api_calls_total{endpoint="/v2/coalitions",code="429"}[1m])') or 0) >= 3)
    verdict = json.loads((REPO / "docs" / "grafana" / "netops.json").read_text())["panels"][0]["targets"][0]["expr"]
    assert stack.value(verdict) == 0.0
    wait_for("a heartbeat", lambda: any(p == "/hb" for _, p in hook.gets))
    assert am_events(am_hook) == [] and netops_events(hook) == []

    # 1. a first burst of 429s: Prometheus counts all three (the series existed at 0), both paths page once
    sim.add_fault("429@/v2/coalitions,count=3,seconds=0")
    burst_at = time.time()
    synced = subprocess.run(netops_cmd("sync", "stable", "--no-progress"), env=env, capture_output=True, text=True,
                            timeout=300)
    assert synced.returncode == 0, synced.stderr[-2000:]
    assert calls_by_code(settings.dsn)["429"] == 3
    wait_for("NetopsApiRateLimited paged", lambda: ("NetopsApiRateLimited", "firing") in am_events(am_hook))
    wait_for("api_rate_limited posted", lambda: ("api_rate_limited", "firing") in netops_events(hook))
    counted = stack.value('sum(increase(netops_api_calls_total{code="429"}[10m]))')
    # all three (a series born at 3 would give 0); increase() extrapolates a little past the last sample
    assert counted is not None and 2.95 <= counted < 3.5, counted
    # both paths judge the same 15-minute count for the calls-per-minute rule
    assert stack.value("netops_api_calls_last_15m") == _loop_doc(env)["calls_15m"]
    # Alertmanager's notification names them too (the rule's `sources` annotation)
    (paged,) = [a for _, doc in am_hook.posts for a in doc["alerts"]
                if a["labels"]["alertname"] == "NetopsApiRateLimited"]
    assert re.search(r"by endpoint: /v2/coalitions x[123] \| by key: \S+ x[123] ", paged["annotations"]["sources"]), \
        paged["annotations"]
    (posted,) = [doc for _, doc in hook.posts if doc.get("alert") == "api_rate_limited"]
    # who drew them, as recorded when the loop saw the first (the burst may still be arriving)
    assert [(s["endpoint"], s["code"]) for s in posted["sources"]] == [("/v2/coalitions", 429)]
    assert 1 <= posted["sources"][0]["calls"] <= 3
    assert posted["sources"][0]["key"] and posted["sources"][0]["component"]
    first_event = _epoch(posted["since"])
    assert burst_at - 1 <= first_event <= _epoch(posted["sent_at"]), posted

    # 2. the metrics endpoint down for GAP s while alerts fire: NetopsTargetDown pages and resolves;
    # NetopsApiRateLimited neither resolves nor pages again (keep_firing_for)
    # (Prometheus' own alert is checked too: Alertmanager's inhibition and dedup could hide a
    # resolve-and-refire from the receiver; a new activeAt could not hide)
    (held,) = stack.alerts("NetopsApiRateLimited")
    assert held[0] == "firing"
    stack.endpoint.stop()
    wait_for("NetopsTargetDown paged", lambda: ("NetopsTargetDown", "firing") in am_events(am_hook), timeout=GAP)
    assert stack.alerts("NetopsApiRateLimited") == [held]  # all series stale, the alert still firing
    time.sleep(max(0.0, GAP - 4))
    stack.endpoint.start()
    wait_for("NetopsTargetDown resolved", lambda: ("NetopsTargetDown", "resolved") in am_events(am_hook))
    time.sleep(KEEP_FIRING_FOR + 3)  # past keep_firing_for: a false resolve would have come by now
    assert stack.alerts("NetopsApiRateLimited") == [held]  # the same alert: same activeAt, never resolved

    # 3. the database down DB_DOWN s: both paths page database_down once and resolve it once;
    # the other alerts hold (their values are unknown, not fixed)
    db_server.down()
    try:
        wait_for("NetopsDatabaseDown paged", lambda: ("NetopsDatabaseDown", "firing") in am_events(am_hook),
                 timeout=DB_DOWN + 10)
        wait_for("database_down posted", lambda: ("database_down", "firing") in netops_events(hook), timeout=DB_DOWN)
        wait_for("a /fail heartbeat", lambda: any(p == "/hb/fail" for _, p in hook.gets), timeout=DB_DOWN)
        time.sleep(DB_DOWN / 2)
    finally:
        db_server.up()
    wait_for("database_down resolved", lambda: ("database_down", "resolved") in netops_events(hook))
    wait_for("NetopsDatabaseDown resolved", lambda: ("NetopsDatabaseDown", "resolved") in am_events(am_hook),
             timeout=KEEP_FIRING_FOR + 15)
    assert stack.alerts("NetopsApiRateLimited") == [held]  # held through the outage, not re-created

    # 4. the hourly budget spent: a sync allowed 2 more calls this hour makes them, then waits
    used = slots_last_hour(settings.dsn)
    waiting = start(netops_cmd("sync", "stable", "--no-progress"), Path(stack.tmp) / "budget-sync.log",
                    {**env, "NETOPS_RATE_PER_HOUR": str(used + 2)})
    time.sleep(3 * LOOP_INTERVAL + 2)
    try:
        assert waiting.poll() is None, "the sync should be waiting for budget"
        assert slots_last_hour(settings.dsn) == used + 2
        # both paths say the budget is spent and a job waits for it (api_budget_spent)
        wait_for("api_budget_spent posted", lambda: ("api_budget_spent", "firing") in netops_events(hook))
        wait_for("NetopsApiBudgetSpent paged",
                 lambda: ("NetopsApiBudgetSpent", "firing") in am_events(am_hook), timeout=30)
        _assert_exactly(stack, hook, am_hook)
    finally:
        stop(waiting)  # (an interrupted sync: sync_interrupted would page next, truthfully)


def _assert_exactly(stack: Stack, hook: Hook, am_hook: Hook) -> None:
    verdict = json.loads((REPO / "docs" / "grafana" / "netops.json").read_text())["panels"][0]["targets"][0]["expr"]
    # exactly these notifications, each once: no false resolve, no re-page
    assert sorted(am_events(am_hook)) == sorted([
        ("NetopsApiRateLimited", "firing"),
        ("NetopsTargetDown", "firing"), ("NetopsTargetDown", "resolved"),
        ("NetopsDatabaseDown", "firing"), ("NetopsDatabaseDown", "resolved"),
        ("NetopsApiBudgetSpent", "firing")]), am_events(am_hook)
    assert netops_events(hook) == [("api_rate_limited", "firing"), ("database_down", "firing"),
                                   ("database_down", "resolved"), ("api_budget_spent", "firing")], netops_events(hook)
    assert stack.value('ALERTS{alertname="NetopsApiRateLimited", alertstate="firing"}') == 1.0
    # the 429s are still in the hour, and the budget is spent: those two fire, nothing else
    assert stack.value(verdict) == 2.0


def _loop_doc(env: dict[str, str]) -> dict[str, Any]:
    """What `netops metrics export --format json` says now (the calls the evaluation counts)."""
    out = subprocess.run(netops_cmd("metrics", "export", "--format", "json"), env=env, capture_output=True,
                         text=True, timeout=60)
    doc = json.loads(out.stdout)
    return {"calls_15m": float(doc["api"]["calls_last_15m"])}


def _epoch(iso_text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("urls", [
    {"netops_alertmanager_webhook_url": "http://127.0.0.1:9/hook",
     "netops_alertmanager_discord_url": "https://discord.com/api/webhooks/1/abc",
     "netops_alertmanager_slack_url": "https://hooks.slack.com/services/T0/B0/x"},
    {"netops_alertmanager_discord_url": "https://discord.com/api/webhooks/1/abc"},
    {},
], ids=["all three", "discord only", "none"])
def test_role_alertmanager_example_passes_amtool(urls: dict[str, str], tmp_path: Path) -> None:
    """The role's example renders (with the role's defaults) to a configuration amtool accepts,
    with every receiver, one, or none set."""
    defaults = yaml.safe_load((REPO / "roles" / "netops" / "defaults" / "main.yml").read_text())
    values = {k: v for k, v in defaults.items() if k.startswith("netops_alertmanager_")} | urls
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
    env.filters["to_json"] = json.dumps
    text = env.from_string((REPO / "roles" / "netops" / "templates" / "alertmanager.yml.j2").read_text()).render(
        **values)
    (tmp_path / "am.yml").write_text(text)
    checked = subprocess.run([str(AMTOOL), "check-config", str(tmp_path / "am.yml")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr + text
    doc = yaml.safe_load(text)
    (receiver,) = [r for r in doc["receivers"] if r["name"] == doc["route"]["receiver"]]
    kinds = {"webhook_configs": "netops_alertmanager_webhook_url", "discord_configs": "netops_alertmanager_discord_url",
             "slack_configs": "netops_alertmanager_slack_url"}
    assert {k for k in kinds if k in receiver} == {k for k, v in kinds.items() if urls.get(v)}
