"""Alerts: injected 429s and 401s fire and resolve, with exactly one webhook POST per state change
to a local receiver; state survives between runs (it is in the database); rules YAML parses."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from netops.cli import cli
from netops.db.alert_state import Stored
from netops.monitor.alerts import RULES, check_alerts, next_state, prometheus_rules
from tests.integration.test_monitor_seed import age_calls, cli_env, connect, healthy, insert_calls


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records each POSTed JSON document."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.headers["Content-Type"] == "application/json"
                if receiver.status == 200:
                    receiver.posts.append(json.loads(body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def of(self, alert: str) -> list[tuple[str, str]]:
        return [(p["alert"], p["state"]) for p in self.posts if p["alert"] == alert]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def states(doc: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a["state"] for a in doc["alerts"]}


def test_429s_fire_once_and_resolve_once(pg_dsn: str, settings_factory: Any, receiver: Receiver) -> None:
    settings = settings_factory(NETOPS_ALERT_WEBHOOK_URL=receiver.url)
    healthy(pg_dsn, settings)
    doc = check_alerts(settings, pg_dsn)
    assert doc["firing"] == [] and receiver.posts == []  # a healthy box: nothing to say
    assert doc["persisted"] is True

    insert_calls(pg_dsn, {429: 4}, ago=300)
    doc = check_alerts(settings, pg_dsn)
    a = {x["name"]: x for x in doc["alerts"]}["api_rate_limited"]
    assert (a["state"], a["previous_state"], a["changed"], a["value"], a["threshold"]) == ("firing", "ok", True, 4, 0)
    assert "NETOPS_RATE_PER_SECOND" in a["action"]
    assert doc["firing"] == ["api_rate_limited"]
    assert receiver.of("api_rate_limited") == [("api_rate_limited", "firing")]
    post = receiver.posts[0]
    assert post["value"] == 4 and post["threshold"] == 0 and post["action"] == a["action"]

    for _ in range(3):  # still firing: no new POST, however often cron runs the check
        doc = check_alerts(settings, pg_dsn)
        assert states(doc)["api_rate_limited"] == "firing"
    assert len(receiver.posts) == 1

    age_calls(pg_dsn, 429, 3600)  # the burst leaves the 1 h window
    doc = check_alerts(settings, pg_dsn)
    assert states(doc)["api_rate_limited"] == "resolved"
    assert receiver.of("api_rate_limited") == [("api_rate_limited", "firing"), ("api_rate_limited", "resolved")]

    doc = check_alerts(settings, pg_dsn)
    assert states(doc)["api_rate_limited"] == "ok"
    doc = check_alerts(settings, pg_dsn)
    assert len(receiver.posts) == 2

    log = (settings.log_path / "alerts.log").read_text()
    assert log.count("FIRING api_rate_limited") == 1
    assert log.count("still firing api_rate_limited") == 3
    assert log.count("RESOLVED api_rate_limited") == 1


def test_401_fires_through_the_cli_with_exit_1(pg_dsn: str, settings_factory: Any, receiver: Receiver) -> None:
    settings = settings_factory(NETOPS_ALERT_WEBHOOK_URL=receiver.url)
    healthy(pg_dsn, settings)
    insert_calls(pg_dsn, {401: 1}, ago=60, endpoint="/oauth/token")
    result = CliRunner().invoke(cli, ["alerts", "check", "--json"], env=cli_env(settings), catch_exceptions=False)
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["firing"] == ["api_unauthorized"]
    assert receiver.of("api_unauthorized") == [("api_unauthorized", "firing")]
    assert receiver.posts[0]["severity"] == "critical"

    result = CliRunner().invoke(cli, ["alerts", "check"], env=cli_env(settings))
    assert result.exit_code == 1
    assert "FIRING   api_unauthorized" in result.output and "netops token refresh" in result.output
    assert len(receiver.posts) == 1

    age_calls(pg_dsn, 401, 7200)
    result = CliRunner().invoke(cli, ["alerts", "check"], env=cli_env(settings))
    assert result.exit_code == 0
    assert receiver.of("api_unauthorized") == [("api_unauthorized", "firing"), ("api_unauthorized", "resolved")]


def test_failed_post_is_retried_next_run_not_lost(pg_dsn: str, settings_factory: Any, receiver: Receiver) -> None:
    settings = settings_factory(NETOPS_ALERT_WEBHOOK_URL=receiver.url)
    healthy(pg_dsn, settings)
    insert_calls(pg_dsn, {429: 1})
    receiver.status = 503
    doc = check_alerts(settings, pg_dsn)
    assert doc["webhook"]["errors"] == ["api_rate_limited: HTTP 503"]
    assert receiver.posts == []
    receiver.status = 200
    doc = check_alerts(settings, pg_dsn)
    assert doc["webhook"]["sent"] == 1 and receiver.of("api_rate_limited") == [("api_rate_limited", "firing")]
    check_alerts(settings, pg_dsn)
    assert len(receiver.posts) == 1
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT state, notified_state, notify_error FROM netops.alert_state WHERE name = 'api_rate_limited'")
        assert cur.fetchone() == ("firing", "firing", None)


def test_thresholds_come_from_settings(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory(NETOPS_ALERT_429_COUNT=5, NETOPS_ALERT_DB_SIZE_BYTES=1000,
                                NETOPS_ALERT_CALLS_PER_MIN=0.5, NETOPS_ALERT_SYNC_SECONDS=30)
    healthy(pg_dsn, settings)  # its sync took 8 x 10 s = 80 s
    insert_calls(pg_dsn, {429: 5, 200: 10}, ago=30)  # 15 calls in 15 min = 1/min
    doc = check_alerts(settings, pg_dsn)
    st = states(doc)
    assert st["api_rate_limited"] == "ok"  # 5 is not > 5
    assert st["db_size"] == "firing"
    assert st["api_calls_per_minute"] == "firing"
    assert st["sync_duration"] == "firing"
    assert st["sync_age"] == "ok" and st["backlog_failed"] == "ok" and st["database_down"] == "ok"


def test_never_synced_fires_sync_age_and_quality_violations_fire(pg_dsn: str, settings_factory: Any) -> None:
    from netops.db.quality import run_checks

    settings = settings_factory()
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE campus_projects DISABLE TRIGGER ALL")
        cur.execute("INSERT INTO campus_projects VALUES (77, 88)")
        run_checks(conn)
    doc = check_alerts(settings, pg_dsn)
    st = states(doc)
    assert st["sync_age"] == "firing"
    assert {a["name"]: a for a in doc["alerts"]}["sync_age"]["value_text"] == "never"
    assert st["data_quality"] == "firing"
    assert {a["name"]: a for a in doc["alerts"]}["data_quality"]["value"] == 2  # two broken FKs in one row


def test_database_down_fires_from_the_file_store(settings_factory: Any, receiver: Receiver, pg_dsn: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = settings_factory(NETOPS_DSN=f"postgresql://x@127.0.0.1:{port}/x", NETOPS_ALERT_WEBHOOK_URL=receiver.url)
    doc = check_alerts(down, down.dsn)
    assert states(doc)["database_down"] == "firing" and doc["persisted"] is False
    check_alerts(down, down.dsn)
    assert receiver.of("database_down") == [("database_down", "firing")]
    up = settings_factory(NETOPS_ALERT_WEBHOOK_URL=receiver.url)  # same state dir, database back
    healthy(pg_dsn, up)
    doc = check_alerts(up, pg_dsn)
    assert states(doc)["database_down"] == "resolved"
    assert receiver.of("database_down") == [("database_down", "firing"), ("database_down", "resolved")]


def test_state_machine() -> None:
    assert next_state(Stored("a", "ok"), True, True) == "firing"
    assert next_state(Stored("a", "firing"), True, True) == "firing"
    assert next_state(Stored("a", "firing"), False, True) == "resolved"
    assert next_state(Stored("a", "resolved", notified_state="resolved"), False, True) == "ok"
    assert next_state(Stored("a", "resolved", notified_state="firing"), False, True) == "resolved"  # POST pending
    assert next_state(Stored("a", "resolved"), False, False) == "ok"
    assert next_state(Stored("a", "resolved"), True, True) == "firing"
    assert next_state(Stored("a", "firing"), None, True) == "firing"  # unknown value keeps the state


def alerts_camel(name: str) -> str:
    from netops.monitor.alerts import _camel

    return _camel(name)


def test_prometheus_rules_parse_and_read_thresholds_from_the_export(settings_factory: Any) -> None:
    yaml = pytest.importorskip("yaml")
    settings = settings_factory(NETOPS_ALERT_429_COUNT=7, NETOPS_ALERT_SYNC_AGE_HOURS=2)
    result = CliRunner().invoke(cli, ["alerts", "rules", "--job", "netops-box"], env=cli_env(settings))
    assert result.exit_code == 0
    doc = yaml.safe_load(result.output)
    rules = doc["groups"][0]["rules"]
    by_name = {r["alert"]: r for r in rules}
    assert len(rules) == len(RULES) + 3  # + NetopsTargetDown, NetopsMetricsAbsent, NetopsMetricsStale
    # no threshold baked in: the same file whatever NETOPS_ALERT_* says
    assert result.output == prometheus_rules(settings_factory(), job="netops-box")
    assert by_name["NetopsApiRateLimited"]["expr"].startswith(
        '(sum without(code) (netops_api_calls_last_hour{code="429"}) > on(instance, job) group_left '
        'netops_alert_threshold{alert="api_rate_limited"})')
    assert by_name["NetopsTargetDown"]["expr"] == 'up{job="netops-box"} == 0'
    # not while the target is merely down (NetopsTargetDown says that: one page per cause)
    assert by_name["NetopsMetricsAbsent"]["expr"] == (
        '(up{job="netops-box"} == 1 unless on(instance, job) netops_database_up) or absent(up{job="netops-box"})')
    # the netops rules hold through a scrape gap; the target rules do not (they say the gap)
    assert all(by_name[alerts_camel(r.name)]["keep_firing_for"] == "3m" for r in RULES)
    assert all("keep_firing_for" not in by_name[n] for n in ("NetopsTargetDown", "NetopsMetricsAbsent"))
    for r in rules:
        assert r["labels"]["severity"] in ("warning", "critical")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        # `instance` kept: nothing aggregates it away (only without(...) of netops' own labels)
        assert " by (" not in r["expr"] and "sum(" not in r["expr"] and "min(" not in r["expr"], r["expr"]
    recorded = [r["record"] for r in doc["groups"][1]["rules"]]
    assert recorded and all(name.count(":") == 2 for name in recorded)


def test_prometheus_rules_reference_exported_metrics(settings_factory: Any) -> None:
    import re

    from netops.monitor.metrics import SPECS

    text = prometheus_rules(settings_factory())
    exported = {f"{n}_total" if s.type == "counter" else n for n, s in SPECS.items()}
    # metric names, not the recording rules' level:metric:op names nor the group names
    used = set(re.findall(r"(?<![:\w])netops_[a-z_]+(?![:\w])", text)) - {"netops_recording"}
    assert used and used <= exported, used - exported


def test_concurrent_checks_post_once(pg_dsn: str, settings_factory: Any, receiver: Receiver) -> None:
    """Two cron runs overlapping (slow webhook): the second waits for the first's transaction (advisory
    lock, and row locks from SELECT ... FOR UPDATE) and sees its state, so the change is POSTed once."""
    import time

    from netops.monitor.alerts import post_webhook

    settings = settings_factory(NETOPS_ALERT_WEBHOOK_URL=receiver.url)
    healthy(pg_dsn, settings)
    check_alerts(settings, pg_dsn)  # the usual case: every alert already has its state row
    insert_calls(pg_dsn, {429: 2})

    def slow_post(url: str, payload: dict[str, Any]) -> str | None:
        time.sleep(0.5)  # both runs are inside check_alerts while the first POST is in flight
        return post_webhook(url, payload)

    docs: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: docs.append(check_alerts(settings, pg_dsn, post=slow_post)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(docs) == 2
    assert receiver.of("api_rate_limited") == [("api_rate_limited", "firing")]
    assert sorted(d["webhook"]["sent"] for d in docs) == [0, 1]
