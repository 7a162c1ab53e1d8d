"""Metrics: Prometheus text parsed with prometheus_client's own parser, values checked against
the rows inserted; metrics_latest.json written atomically; the enable/interval settings honoured."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from netops.cli import cli
from netops.monitor import files, metrics
from tests.integration.test_monitor_seed import (
    STABLE_ROWS,
    cli_env,
    connect,
    healthy,
    insert_backlog,
    insert_calls,
    insert_run,
    live_sync,
)

EXPECTED_NAMES = {
    "netops_sync_duration_seconds", "netops_sync_rows", "netops_sync_last_success_timestamp_seconds",
    "netops_api_calls_last_hour", "netops_api_budget_calls_per_hour", "netops_build_info",
    "netops_api_utilisation_ratio", "netops_alert_threshold", "netops_task_last_success_timestamp_seconds",
    "netops_api_rate_limit_remaining", "netops_token_expiry_timestamp_seconds", "netops_backlog_items",
    "netops_database_size_bytes", "netops_log_bytes", "netops_data_quality_violations", "netops_table_rows",
    "netops_database_up",
}


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted label pairs -> value}, via prometheus_client's parser (it rejects bad text)."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        assert fam.documentation, f"{fam.name} has no HELP"
        assert fam.type == metrics.SPECS[fam.name].type, fam.name
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def one(parsed: dict[str, Any], name: str, **labels: str) -> float:
    return parsed[name][tuple(sorted(labels.items()))]


@pytest.fixture
def busy_box(pg_dsn: str, settings_factory: Any) -> Any:
    """Healthy box plus an hour of mixed answers, older calls outside the window, a backlog and a
    stored quality check."""
    settings = settings_factory(NETOPS_RATE_PER_HOUR=1000)
    healthy(pg_dsn, settings)  # 20 x 200, 15 min ago
    insert_calls(pg_dsn, {200: 10, 429: 3, 401: 2, None: 1}, ago=120, hourly_remaining=950, secondly_remaining=0)
    insert_calls(pg_dsn, {200: 50, 429: 9}, ago=2 * 3600)  # outside the 1 h window
    insert_backlog(pg_dsn, {"pending": 6, "failed": 1, "done": 4})
    settings.log_path.mkdir(parents=True, exist_ok=True)
    (settings.log_path / "nightly_stable_tables.log").write_text("2026-11-29T00:00:00Z INFO    x\n" * 100)
    from netops.db.quality import run_checks

    with connect(pg_dsn) as conn:
        run_checks(conn)
    return settings


def test_prometheus_export_carries_named_metrics_with_correct_values(pg_dsn: str, busy_box: Any) -> None:
    settings = busy_box
    result = CliRunner().invoke(cli, ["metrics", "export", "--format", "prometheus"], env=cli_env(settings),
                                catch_exceptions=False)
    assert result.exit_code == 0
    text = result.output
    for name in EXPECTED_NAMES:
        assert f"# HELP {name} " in text and f"# TYPE {name} gauge" in text, name
    for name in ("netops_api_calls", "netops_sync_runs", "netops_sync_rows_written", "netops_backlog_items_processed"):
        assert f"# TYPE {name}_total counter" in text and f"{name}_total{{" in text, name
    p = parse(text)

    assert one(p, "netops_api_calls_last_hour", code="200") == 30
    assert one(p, "netops_api_calls_last_hour", code="429") == 3
    assert one(p, "netops_api_calls_last_hour", code="401") == 2
    assert one(p, "netops_api_calls_last_hour", code="none") == 1
    assert "netops_api_rate_limited_last_hour" not in p and "netops_api_unauthorized_last_hour" not in p
    assert one(p, "netops_api_utilisation_ratio") == pytest.approx(0.036)  # 36 / 1000
    # counters: every row ever recorded (the 2 h old calls too), by endpoint and code
    totals: dict[str, float] = {}
    for labels, v in p["netops_api_calls_total"].items():
        totals[dict(labels)["code"]] = totals.get(dict(labels)["code"], 0) + v
    assert totals == {"200": 80, "429": 12, "401": 2, "none": 1, "500": 0}
    # each endpoint's 401/429 series exists before its first such answer, at 0 (Prometheus'
    # increase() would miss a series' first burst), catalog endpoints never called included
    assert one(p, "netops_api_calls_total", endpoint="/v2/coalitions", code="429") == 0
    endpoints = {dict(labels)["endpoint"] for labels in p["netops_api_calls_total"]}
    for endpoint in endpoints:
        for code in ("200", "401", "429", "500"):
            assert (("code", code), ("endpoint", endpoint)) in {tuple(sorted(k)) for k in p["netops_api_calls_total"]}
    assert one(p, "netops_backlog_items_processed_total", outcome="done") == 4  # no outcome recorded: done
    assert one(p, "netops_backlog_items_processed_total", outcome="failed") == 1
    assert one(p, "netops_alert_threshold", alert="backlog_depth") == busy_box.alert_backlog_depth
    assert one(p, "netops_build_info", version=metrics._version()) == 1
    assert one(p, "netops_api_budget_calls_per_hour") == 1000
    assert one(p, "netops_api_rate_limit_remaining", window="hourly") == 950
    assert one(p, "netops_api_rate_limit_remaining", window="secondly") == 0

    with connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT phase, extract(epoch FROM finished_at), rows_inserted FROM netops.sync_runs")
        finished = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
        cur.execute("SELECT pg_database_size(current_database())")
        db_size = cur.fetchone()[0]
    for phase, (ts, inserted) in finished.items():
        assert one(p, "netops_sync_last_success_timestamp_seconds", phase=phase) == pytest.approx(float(ts), abs=1e-3)
        assert one(p, "netops_sync_rows", phase=phase, kind="inserted") == inserted
        assert one(p, "netops_sync_runs_total", phase=phase, outcome="success") == 1
        assert one(p, "netops_sync_duration_seconds", phase=phase) == pytest.approx(10.0, abs=0.01)
    assert one(p, "netops_database_size_bytes") == pytest.approx(db_size, rel=0.05)
    assert one(p, "netops_database_up") == 1
    for table, n in STABLE_ROWS.items():
        assert one(p, "netops_table_rows", table=table) == n
    assert one(p, "netops_backlog_items", state="pending") == 6
    assert one(p, "netops_backlog_items", state="failed") == 1
    import time

    assert 6900 < one(p, "netops_token_expiry_timestamp_seconds") - time.time() <= 7000
    assert one(p, "netops_log_bytes") >= 3100
    assert one(p, "netops_log_file_bytes", component="stable") == 3100
    assert one(p, "netops_data_quality_violations") == 0


def test_json_export_matches_prometheus(busy_box: Any) -> None:
    result = CliRunner().invoke(cli, ["metrics", "export", "--format", "json"], env=cli_env(busy_box))
    snap = json.loads(result.output)
    assert snap["api"]["calls_last_hour"] == 36
    assert snap["schema_version"] == metrics.SCHEMA_VERSION
    assert snap["api"]["by_code_last_hour"] == {"200": 30, "401": 2, "429": 3, "none": 1}
    assert snap["kpi"] == {"api_utilisation_ratio": 0.036, "data_quality_violations": 0}
    assert snap["backlog"]["pending"] == 6


def test_registry_is_passed_in_not_global(busy_box: Any, pg_dsn: str) -> None:
    snap = metrics.collect_snapshot(busy_box, pg_dsn)
    a, b = CollectorRegistry(), CollectorRegistry()
    text_a = metrics.prometheus_text(snap, a)
    text_b = metrics.prometheus_text(snap, b)  # a second registration would raise on a shared one
    assert text_a == text_b
    assert a.get_sample_value("netops_api_calls_last_hour", {"code": "429"}) == 3


def test_write_is_atomic_and_textfile_dir(busy_box: Any, tmp_path: Any) -> None:
    settings = busy_box
    env = cli_env(settings)
    result = CliRunner().invoke(cli, ["metrics", "write"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out_dir = settings.metrics_path
    assert sorted(os.listdir(out_dir)) == ["metrics.prom", "metrics_latest.json"]  # no temp files left
    data = json.loads((out_dir / "metrics_latest.json").read_text())
    assert data["api"]["rate_limited_last_hour"] == 3
    assert 'netops_api_calls_last_hour{code="429"} 3.0' in (out_dir / "metrics.prom").read_text()

    textdir = tmp_path / "textfile"
    result = CliRunner().invoke(cli, ["metrics", "export", "--textfile-dir", str(textdir)], env=env)
    assert result.exit_code == 0
    p = parse((textdir / "netops.prom").read_text())
    assert one(p, "netops_backlog_items", state="pending") == 6


def test_atomic_write_never_leaves_a_partial_file(tmp_path: Any, monkeypatch: Any) -> None:
    target = tmp_path / "metrics_latest.json"
    files.atomic_write(target, '{"old": true}\n')

    def boom(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        files.atomic_write(target, '{"new": true}\n')
    assert target.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ["metrics_latest.json"]


def test_disabled_metrics_write_nothing(settings_factory: Any) -> None:
    settings = settings_factory(BACKLOG_ENABLE_METRICS="false")
    result = CliRunner().invoke(cli, ["metrics", "write"], env=cli_env(settings))
    assert result.exit_code == 0
    assert "BACKLOG_ENABLE_METRICS=false" in result.output
    assert not settings.metrics_path.exists()


def test_loop_rewrites_every_interval(busy_box: Any, pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory(BACKLOG_METRIC_INTERVAL=1)
    sleeps: list[float] = []
    stamps: list[str] = []

    def fake_sleep(s: float) -> None:
        sleeps.append(s)
        stamps.append(json.loads((settings.metrics_path / "metrics_latest.json").read_text())["generated_at_unix"])
        insert_run(pg_dsn, started_ago=5)  # something changes between writes

    n = metrics.metrics_loop(settings, lambda: pg_dsn, iterations=3, sleep=fake_sleep)
    assert n == 3
    assert len(sleeps) == 2 and all(0 < s <= 1 for s in sleeps)
    assert stamps[0] < stamps[1]
    log = (settings.log_path / "metrics.log").read_text()
    assert log.count("wrote metrics") == 3


def test_database_down_still_exports(settings_factory: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_factory(NETOPS_DSN=f"postgresql://x@127.0.0.1:{port}/x")
    result = CliRunner().invoke(cli, ["metrics", "export"], env=cli_env(settings))
    assert result.exit_code == 0
    p = parse(result.output)
    assert one(p, "netops_database_up") == 0
    assert "netops_sync_rows" not in p


def test_running_phase_duration_grows(pg_dsn: str, settings_factory: Any) -> None:
    settings = settings_factory()
    insert_run(pg_dsn, started_ago=42, running="cursus")
    with live_sync(pg_dsn):
        p = parse(metrics.prometheus_text(metrics.collect_snapshot(settings, pg_dsn)))
    assert one(p, "netops_sync_running", phase="cursus") == 1
    assert one(p, "netops_sync_duration_seconds", phase="cursus") == pytest.approx(42, abs=2)


def test_loop_through_the_cli(busy_box: Any, settings_factory: Any) -> None:
    settings = settings_factory(BACKLOG_METRIC_INTERVAL=1)
    result = CliRunner().invoke(cli, ["metrics", "write", "--loop", "--iterations", "2"], env=cli_env(settings),
                                catch_exceptions=False)
    assert result.exit_code == 0
    assert "every 1s" in result.output
    assert (settings.log_path / "metrics.log").read_text().count("wrote metrics") == 2
    assert json.loads((settings.metrics_path / "metrics_latest.json").read_text())["backlog"]["pending"] == 6


def test_json_is_also_in_the_log_dir_where_the_seed_wrote_it(busy_box: Any) -> None:
    settings = busy_box
    settings.log_path.mkdir(parents=True, exist_ok=True)
    (settings.log_path / "metrics_latest.json").write_text('{"seed": true}\n')  # the seed's old file
    result = CliRunner().invoke(cli, ["metrics", "write"], env=cli_env(settings), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    link = settings.log_path / "metrics_latest.json"
    assert link.is_symlink() and str(link) in result.output
    assert json.loads(link.read_text()) == json.loads((settings.metrics_path / "metrics_latest.json").read_text())
    again = CliRunner().invoke(cli, ["metrics", "write"], env=cli_env(settings))  # idempotent
    assert again.exit_code == 0 and link.is_symlink()
    assert [p.name for p in settings.log_path.iterdir() if p.name.startswith(".metrics")] == []


def test_database_down_keeps_every_section_with_nulls(settings_factory: Any) -> None:
    settings = settings_factory(NETOPS_DSN="postgresql://x@127.0.0.1:1/x")
    result = CliRunner().invoke(cli, ["metrics", "export", "--format", "json"], env=cli_env(settings))
    snap = json.loads(result.output)
    assert snap["schema_version"] == metrics.SCHEMA_VERSION and snap["database"]["up"] == 0
    for section in ("sync", "api", "backlog", "quality", "counters", "tables", "api_keys", "tasks", "kpi"):
        assert section in snap, section
    assert snap["api"]["calls_last_hour"] is None and snap["backlog"]["pending"] is None
    assert snap["sync"]["phases"] is None and snap["counters"]["api_calls"] is None
    assert snap["quality"]["violations"] is None and snap["tables"] is None and snap["api_keys"] is None
    assert snap["alerts"]["backlog_depth"]["state"] == "unknown"


def test_two_netops_prom_files_in_one_textfile_dir_are_refused(busy_box: Any, tmp_path: Any) -> None:
    """node_exporter reads every *.prom of its dir: metrics.prom next to netops.prom doubled every
    series. --textfile-dir pointed at the metrics dir is refused with one line, nothing written."""
    settings = busy_box
    env = cli_env(settings)
    assert CliRunner().invoke(cli, ["metrics", "write"], env=env).exit_code == 0
    result = CliRunner().invoke(cli, ["metrics", "export", "--textfile-dir", str(settings.metrics_path)], env=env)
    assert result.exit_code == 1
    assert "metrics.prom already holds netops metrics" in result.output and "one netops .prom file per directory" \
        in result.output
    assert not (settings.metrics_path / "netops.prom").exists()
    other = tmp_path / "textfile"
    other.mkdir()
    (other / "node.prom").write_text("node_thing 1\n")  # another exporter's file is fine
    assert CliRunner().invoke(cli, ["metrics", "export", "--textfile-dir", str(other)], env=env).exit_code == 0
    assert (other / "netops.prom").exists()
