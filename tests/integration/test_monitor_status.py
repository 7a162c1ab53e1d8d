"""`netops status` against a real PostgreSQL: every contract field, and exit 0/1/2 for states we create."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from netops.cli import cli
from netops.db import monitor_facts
from netops.monitor import facts
from netops.monitor.status import collect_status
from tests.integration.test_monitor_seed import (
    STABLE_ROWS,
    cli_env,
    connect,
    healthy,
    insert_backlog,
    insert_calls,
    insert_run,
    live_sync,
    write_token,
)

CONTRACT_KEYS = {"state", "checked_at", "problems", "services", "phases", "last_sync", "backlog", "tables",
                 "database", "disk", "token", "alerts"}
PHASE_KEYS = {"phase", "table", "last_status", "last_finished_at", "age_seconds", "rows_inserted",
              "rows_updated", "rows_deleted", "duration_seconds", "error"}


def run_status(settings: Any) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["status", "--json"], env=cli_env(settings), catch_exceptions=False)
    return result.exit_code, json.loads(result.output)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthy_box_reports_every_contract_field_and_exits_0(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    run_id = healthy(pg_dsn, settings)
    code, doc = run_status(settings)

    assert doc["state"] == "ok", doc["problems"]
    assert code == 0
    assert set(doc) >= CONTRACT_KEYS
    assert doc["services"]["postgresql"]["ok"] is True
    assert doc["services"]["postgresql"]["version"].startswith("1")
    assert doc["services"]["nginx"] == {"ok": None, "url": None, "error": None}
    assert [p["phase"] for p in doc["phases"]] == [p for p, _ in facts.STABLE_PHASES]
    for p in doc["phases"]:
        assert set(p) >= PHASE_KEYS
        assert p["last_status"] == "success"
        assert p["rows_inserted"] == STABLE_ROWS[p["table"]]
        assert p["duration_seconds"] == pytest.approx(10.0, abs=0.01)
        assert 3600 - 90 - 5 < p["age_seconds"] < 3600 + 5  # phases ran back to back from 1 h ago
    assert doc["last_sync"]["status"] == "success"
    assert doc["last_sync"]["run_id"] == run_id
    assert doc["last_sync"]["age_seconds"] == pytest.approx(3600 - 80, abs=5)
    assert doc["backlog"] == {"available": True, "pending": 0, "processing": 0, "failed": 0, "oldest_pending_at": None}
    for table, n in STABLE_ROWS.items():
        assert doc["tables"][table]["rows"] == n
        assert doc["tables"][table]["exact"] is True
    assert doc["database"]["size_bytes"] > 1_000_000
    assert set(doc["disk"]) == {"log_dir", "state_dir"}
    assert doc["disk"]["state_dir"]["free_bytes"] > 0
    assert doc["token"]["present"] is True
    assert 6900 < doc["token"]["ttl_seconds"] <= 7000
    assert doc["token"]["secret_valid_until"].endswith("Z")
    assert doc["alerts"] == {"firing": []}
    assert doc["api"]["calls_last_hour"] == 20
    assert doc["api"]["hourly_remaining"] == 1180


def test_failed_phase_and_failed_backlog_items_are_warnings(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    healthy(pg_dsn, settings)
    insert_run(pg_dsn, started_ago=600, failed="projects")
    insert_backlog(pg_dsn, {"pending": 4, "processing": 1, "failed": 2, "done": 7})
    code, doc = run_status(settings)

    assert (code, doc["state"]) == (1, "warning")
    checks = {p["check"]: p for p in doc["problems"]}
    assert set(checks) == {"sync_failed", "backlog_failed"}
    assert "projects: HTTP 500" in checks["sync_failed"]["message"]
    assert doc["last_sync"]["status"] == "failed"
    by_phase = {p["phase"]: p for p in doc["phases"]}
    assert by_phase["projects"]["last_status"] == "failed"
    # phases after the failure keep their previous (successful) run
    assert by_phase["coalitions"]["last_status"] == "success"
    assert doc["backlog"]["pending"] == 4 and doc["backlog"]["processing"] == 1 and doc["backlog"]["failed"] == 2


def test_running_phase_shows_progress(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    healthy(pg_dsn, settings)
    insert_run(pg_dsn, started_ago=30, running="campus_projects", pages_total=10)
    with live_sync(pg_dsn):
        code, doc = run_status(settings)
    p = {p["phase"]: p for p in doc["phases"]}["campus_projects"]
    assert p["running"] is True and p["last_status"] == "running"
    assert (p["pages_done"], p["pages_total"]) == (5, 10)
    assert doc["last_sync"]["status"] == "running"
    assert code == 0  # a sync in progress is normal


def test_stale_sync_is_critical(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory(NETOPS_ALERT_SYNC_AGE_HOURS=10)
    healthy(pg_dsn, settings)
    with connect(pg_dsn) as conn, conn.cursor() as cur:  # the only sync was 21 h ago: > 10 h
        cur.execute("UPDATE netops.sync_runs SET started_at = started_at - interval '20 hours', "
                    "finished_at = finished_at - interval '20 hours'")
    code, doc = run_status(settings)
    assert (code, doc["state"]) == (2, "critical")
    assert [p["check"] for p in doc["problems"]] == ["sync_age"]
    # the same threshold and severity as the sync_age alert (one rule table): never two answers
    alerts = CliRunner().invoke(cli, ["alerts", "check", "--json"], env=cli_env(settings))
    assert json.loads(alerts.output)["firing"] == ["sync_age"]

    settings = settings_factory(NETOPS_ALERT_SYNC_AGE_HOURS=25)  # 21 h: within the threshold
    code, doc = run_status(settings)
    assert (code, doc["state"]) == (0, "ok")


def test_unreachable_postgres_is_critical(settings_factory: Any) -> None:
    settings = settings_factory(NETOPS_DSN=f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    write_token(settings)
    code, doc = run_status(settings)
    assert (code, doc["state"]) == (2, "critical")
    assert doc["services"]["postgresql"]["ok"] is False
    assert doc["services"]["postgresql"]["error"]
    assert set(doc) >= CONTRACT_KEYS  # still the whole shape, for the Ansible module


def test_expired_secret_is_critical_and_missing_token_a_warning(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    healthy(pg_dsn, settings)
    write_token(settings, ttl=-5, secret_valid_days=-1)
    code, doc = run_status(settings)
    assert code == 2
    assert {p["check"] for p in doc["problems"]} == {"token", "secret_expired", "secret_expiring"}
    settings.token_file.unlink()
    code, doc = run_status(settings)
    assert code == 1 and doc["token"]["present"] is False


def test_backlog_not_installed_is_reported_unavailable(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    healthy(pg_dsn, settings)
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE netops.backlog_items")
    doc = collect_status(settings, pg_dsn)
    assert doc["backlog"]["available"] is False
    assert doc["state"] == "ok"


def test_big_tables_use_catalog_estimates(pg_dsn: str, settings_factory: Any, monkeypatch: Any) -> None:
    settings = settings_factory()
    healthy(pg_dsn, settings)
    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (id, login) SELECT g, 'u' || g FROM generate_series(1, 50000) g")
        cur.execute("ANALYZE users")
    monkeypatch.setattr(monitor_facts, "EXACT_COUNT_MAX_BYTES", 1024 * 1024)  # users (~3 MB) is now "big"
    doc = collect_status(settings, pg_dsn)
    assert doc["tables"]["users"]["exact"] is False
    assert doc["tables"]["users"]["rows"] == pytest.approx(50000, rel=0.02)
    assert doc["tables"]["cursus"] == {"rows": 1, "exact": True, "bytes": 8192}


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200 if self.path == "/" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_nginx_checked_only_when_configured(pg_dsn: str, settings_factory: Any, http_server: str) -> None:
    settings = settings_factory(NETOPS_NGINX_URL=http_server + "/")
    healthy(pg_dsn, settings)
    code, doc = run_status(settings)
    assert doc["services"]["nginx"]["ok"] is True and code == 0

    settings = settings_factory(NETOPS_NGINX_URL=http_server + "/missing")
    code, doc = run_status(settings)
    assert doc["services"]["nginx"] == {"ok": False, "url": http_server + "/missing", "error": "HTTP 404",
                                        "http_status": 404}
    assert code == 1

    settings = settings_factory(NETOPS_NGINX_URL=f"http://127.0.0.1:{free_port()}/")
    code, doc = run_status(settings)
    assert doc["services"]["nginx"]["ok"] is False and "no answer" in doc["services"]["nginx"]["error"]


class _Slow(http.server.BaseHTTPRequestHandler):
    """nginx on a loaded box: answers, but only after SLOW_S."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        time.sleep(SLOW_S)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


SLOW_S = 1.5


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_nginx_slower_than_a_second_is_up_and_a_timeout_names_itself(
        pg_dsn: str, settings_factory: Any, slow_server: str) -> None:
    # the default waits longer than a loaded box takes (the old fixed 1 s called it down)
    settings = settings_factory(NETOPS_NGINX_URL=slow_server)
    healthy(pg_dsn, settings)
    code, doc = run_status(settings)
    assert doc["services"]["nginx"]["ok"] is True and code == 0

    # past nginx_timeout it is down, and the problem says what timed out and which setting to raise
    settings = settings_factory(NETOPS_NGINX_URL=slow_server, NETOPS_NGINX_TIMEOUT="0.3")
    code, doc = run_status(settings)
    assert doc["services"]["nginx"] == {
        "ok": False, "url": slow_server,
        "error": "GET timed out: no answer within 0.3 s (nginx_timeout, NETOPS_NGINX_TIMEOUT)"}
    assert code == 1
    assert any(p["check"] == "nginx_down" and "timed out" in p["message"] and "0.3 s" in p["message"]
               for p in doc["problems"])


def test_text_output_names_problems(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    healthy(pg_dsn, settings)
    insert_calls(pg_dsn, {429: 3})
    insert_run(pg_dsn, started_ago=100, failed="campuses")
    result = CliRunner().invoke(cli, ["status"], env=cli_env(settings))
    assert result.exit_code == 1
    assert "netops status: WARNING" in result.output
    assert "sync_failed" in result.output and "campuses: HTTP 500" in result.output
    assert "429: 3" in result.output


def test_unmigrated_database_is_critical_and_says_migrate(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    with connect(pg_dsn) as conn, conn.cursor() as cur:  # as before `netops db migrate` ever ran
        cur.execute("DROP SCHEMA netops CASCADE")
    code, doc = run_status(settings)
    assert (code, doc["state"]) == (2, "critical")
    assert doc["services"]["postgresql"]["ok"] is True
    assert [p["check"] for p in doc["problems"] if p["severity"] == "critical"] == ["schema_missing"]
    assert "netops db migrate" in doc["problems"][0]["message"]


def test_status_json_imports_neither_requests_nor_tenacity(pg_dsn: str, settings_factory: Any) -> None:
    """`netops status --json` runs every minute from cron: it reads files and the database only,
    so the HTTP client's libraries stay unloaded (a token and a key configured, the database up)."""
    from tests.integration.test_operator_scenarios import netops

    settings = settings_factory()
    healthy(pg_dsn, settings)
    out = netops(settings, "status", "--json", PYTHONPROFILEIMPORTTIME="1")
    assert json.loads(out.stdout)["services"]["postgresql"]["ok"] is True
    loaded = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time")}
    assert "netops.db.monitor_facts" in loaded  # the database was read
    heavy = {"requests", "tenacity", "prometheus_client", "loguru"}
    assert not loaded & heavy, sorted(loaded & heavy)
