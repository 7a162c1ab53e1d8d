"""Delivery of netops' own alerts: the Discord and Slack payloads name the endpoint, key and job
behind a 429 and the time of the first one; the heartbeat URL is pinged after each check (its
/fail while a critical alert fires); `netops alerts check --loop` stops within 2 s of SIGINT or
SIGTERM, also in the middle of a check whose webhook hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from netops.cli import cli
from netops.monitor.alerts import check_alerts
from tests.integration.test_monitor_seed import cli_env, healthy, insert_calls
from tests.integration.test_prometheus_alertmanager import Hook, wait_for


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("fmt", ["json", "discord", "slack"])
def test_payload_names_who_drew_the_429s_and_when_the_first_was(pg_dsn: str, settings_factory: Any, hook: Hook,
                                                                fmt: str) -> None:
    settings = settings_factory(NETOPS_ALERT_WEBHOOK_URL=hook.url + "/w", NETOPS_ALERT_WEBHOOK_FORMAT=fmt)
    healthy(pg_dsn, settings)
    insert_calls(pg_dsn, {429: 2}, ago=600, endpoint="/v2/coalitions", component="backlog")
    insert_calls(pg_dsn, {429: 1}, ago=120, endpoint="/v2/campus", component="sync")
    doc = check_alerts(settings, pg_dsn)
    assert doc["firing"] == ["api_rate_limited"] and doc["webhook"]["sent"] == 1
    ((_, body),) = hook.posts
    if fmt == "json":
        assert [(s["endpoint"], s["component"], s["calls"]) for s in body["sources"]] == [
            ("/v2/coalitions", "backlog", 2), ("/v2/campus", "sync", 1)]
        # the first event's time, not the check's
        assert abs(_epoch(body["since"]) - (time.time() - 600)) < 30
        assert _epoch(doc["checked_at"]) - _epoch(body["since"]) > 500
        return
    text = body["content"] if fmt == "discord" else body["text"]
    assert set(body) == ({"username", "content"} if fmt == "discord" else {"text"})
    assert "api_rate_limited" in text and "FIRING" in text
    assert "2 x HTTP 429 from /v2/coalitions" in text and "backlog" in text and "1 x HTTP 429 from /v2/campus" in text
    assert "action: " in text and "first event: " in text


def test_heartbeat_pings_and_fails_on_critical(pg_dsn: str, settings_factory: Any, hook: Hook) -> None:
    settings = settings_factory(NETOPS_ALERT_HEARTBEAT_URL=hook.url + "/hb")
    healthy(pg_dsn, settings)
    doc = check_alerts(settings, pg_dsn)
    assert doc["heartbeat"] == {"configured": True, "sent": "ok", "error": None}
    insert_calls(pg_dsn, {429: 1}, ago=60)  # a warning: still a healthy ping
    check_alerts(settings, pg_dsn)
    down = settings_factory(NETOPS_ALERT_HEARTBEAT_URL=hook.url + "/hb", NETOPS_DSN="postgresql://x@127.0.0.1:1/x")
    doc = check_alerts(down, down.dsn)  # database_down is critical
    assert doc["heartbeat"]["sent"] == "fail"
    assert [p for _, p in hook.gets] == ["/hb", "/hb", "/hb/fail"]


def test_heartbeat_failure_is_reported_not_fatal(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory(NETOPS_ALERT_HEARTBEAT_URL="http://127.0.0.1:1/hb")
    healthy(pg_dsn, settings)
    doc = check_alerts(settings, pg_dsn)
    assert doc["heartbeat"]["error"] and doc["heartbeat"]["error"].startswith("no answer")


def _loop(settings: Any, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, **cli_env(settings)}
    return subprocess.Popen([sys.executable, "-m", "netops", "alerts", "check", "--loop", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_loop_stops_within_2s_while_sleeping(pg_dsn: str, settings_factory: Any, hook: Hook, sig: int) -> None:
    settings = settings_factory(NETOPS_ALERT_HEARTBEAT_URL=hook.url + "/hb")
    healthy(pg_dsn, settings)
    proc = _loop(settings, "--interval", "60")
    try:
        wait_for("the first check", lambda: hook.gets, timeout=60)
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 2.0 and proc.returncode == 0, (took, err)
    assert "alert loop ended: stopped by signal" in err
    assert out == ""  # a healthy box: nothing changed, nothing printed


def test_loop_cuts_a_hanging_check_short_within_2s(pg_dsn: str, settings_factory: Any) -> None:
    """The webhook accepts the POST and never answers (the POST would wait its 5 s timeout)."""
    import http.server
    import threading

    arrived = threading.Event()

    class Hang(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            arrived.set()
            time.sleep(8)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = settings_factory(NETOPS_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{server.server_address[1]}/w")
        healthy(pg_dsn, settings)
        insert_calls(pg_dsn, {429: 1}, ago=60)
        proc = _loop(settings, "--interval", "30")
        try:
            assert arrived.wait(60)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert took < 2.0 and proc.returncode == 0, (took, err)
        assert "cut short" in err
        # nothing of the cut check was recorded: the next check POSTs the change again
        doc = check_alerts(settings_factory(), pg_dsn)
        assert {a["name"]: a["previous_state"] for a in doc["alerts"]}["api_rate_limited"] == "ok"
    finally:
        server.shutdown()
        server.server_close()


def test_rules_refuse_a_bad_duration(settings_factory: Any) -> None:
    result = CliRunner().invoke(cli, ["alerts", "rules", "--keep-firing-for", "3 minutes"],
                                env=cli_env(settings_factory()))
    assert result.exit_code != 0 and "not a Prometheus duration" in result.output and "3m" in result.output


def test_bad_webhook_format_is_refused(settings_factory: Any) -> None:
    result = CliRunner().invoke(cli, ["alerts", "check"],
                                env={**cli_env(settings_factory()), "NETOPS_ALERT_WEBHOOK_FORMAT": "teams"})
    assert result.exit_code != 0 and "NETOPS_ALERT_WEBHOOK_FORMAT" in result.output
    assert "json, discord, slack" in result.output


def test_loop_exits_when_netops_is_reinstalled(pg_dsn: str, settings_factory: Any, monkeypatch: Any) -> None:
    """A deploy reinstalls the package under a running loop: it exits (cron starts the new code)."""
    from netops.monitor import alerts

    settings = settings_factory()
    healthy(pg_dsn, settings)
    stamps = iter([("0.1.0", 1.0), ("0.1.0", 1.0), ("0.1.1", 2.0)])
    monkeypatch.setattr(alerts, "installed_stamp", lambda: next(stamps))
    docs: list[dict[str, Any]] = []
    why = alerts.alert_loop(settings, lambda: pg_dsn, 1.0, docs.append)
    assert "reinstalled" in why and len(docs) == 1


def test_loop_exits_when_its_config_file_changes(pg_dsn: str, settings_factory: Any, tmp_path: Path) -> None:
    """A deploy that rewrites netops.toml (a new webhook URL, a threshold) under a running loop:
    it exits after the check in progress, so cron starts it again reading the new file."""
    import dataclasses

    from netops.monitor import alerts

    config = tmp_path / "netops.toml"
    config.write_text("")
    settings = dataclasses.replace(settings_factory(), config_path=str(config))
    healthy(pg_dsn, settings)
    docs: list[dict[str, Any]] = []

    def emit(doc: dict[str, Any]) -> None:
        docs.append(doc)
        if len(docs) == 2:  # the deploy's template task, one second later by the file's clock
            st = config.stat()
            os.utime(config, (st.st_atime, st.st_mtime + 1))

    why = alerts.alert_loop(settings, lambda: pg_dsn, 0.05, emit, iterations=10)
    assert "netops.toml changed" in why and len(docs) == 2


def test_loop_json_is_one_document_per_check(pg_dsn: str, settings_factory: Any) -> None:
    import json

    settings = settings_factory()
    healthy(pg_dsn, settings)
    result = CliRunner().invoke(cli, ["alerts", "check", "--loop", "--interval", "1", "--iterations", "2", "--json"],
                                env=cli_env(settings), catch_exceptions=False)
    assert result.exit_code == 0
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(docs) == 2 and all(d["state"] == "ok" and d["persisted"] for d in docs)
