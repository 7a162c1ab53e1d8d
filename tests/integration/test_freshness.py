"""Freshness per resource (issue 23) with a real database: now minus the end of the resource's last
fully applied window (netops/db/marks.py `applied_until`) is one fact of the evaluation, judged by
the `resource_stale` rule against its target, and shown by status (text + JSON) and the metrics
(JSON + Prometheus)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from netops.catalog import BACKLOG_BY_RESOURCE
from netops.cli import cli
from netops.config import Settings, freshness_target
from netops.monitor.evaluation import evaluate
from tests.fixtures.pg import query
from tests.integration.test_monitor_seed import cli_env


def _mark(dsn: str, resource: str, minutes_ago: float) -> None:
    query(dsn, "INSERT INTO netops.backlog_marks (resource, high_water, updated_at) "
               "VALUES (%s, now() - make_interval(secs => %s), now()) "
               "ON CONFLICT (resource) DO UPDATE SET high_water = EXCLUDED.high_water", (resource, minutes_ago * 60))


def _verdict(settings: Settings, dsn: str) -> Any:
    ev = evaluate(settings, dsn, check_services=False)
    return ev, next(v for v in ev.verdicts if v.rule.name == "resource_stale")


def test_fresh_marks_are_ok_and_a_stale_one_fires_naming_it(settings_factory: Any, pg_dsn: str) -> None:
    settings = settings_factory()
    ev, v = _verdict(settings, pg_dsn)
    assert ev.facts.freshness == {r: None for r in BACKLOG_BY_RESOURCE}   # never detected: unknown, not fired
    assert v.firing is False and v.value == 0.0
    for r in BACKLOG_BY_RESOURCE:
        _mark(pg_dsn, r, 3)
    ev, v = _verdict(settings, pg_dsn)
    assert ev.facts.freshness is not None
    assert ev.facts.freshness["users"] == pytest.approx(180, abs=5)
    assert v.firing is False and v.value == pytest.approx(180 / 600, abs=0.01)   # target: 2 × 5 min
    _mark(pg_dsn, "coalitions_users", 25)
    ev, v = _verdict(settings, pg_dsn)
    assert v.firing is True and v.value == pytest.approx(1500 / 600, abs=0.02)
    assert v.detail is not None and v.detail.startswith("coalitions_users 15")   # 1500 s old
    assert "users" not in v.detail.replace("coalitions_users", "")
    assert "resource_stale" in [x.rule.name for x in ev.firing] and v.rule.severity == "warning"


def test_a_change_still_queued_holds_the_applied_end_back(settings_factory: Any, pg_dsn: str) -> None:
    settings = settings_factory()
    _mark(pg_dsn, "users", 1)
    query(pg_dsn, "INSERT INTO netops.backlog_items (resource, entity_id, action, state, source_updated_at) "
                  "VALUES ('users', 1, 'upsert', 'pending', now() - interval '40 minutes')")
    ev, v = _verdict(settings, pg_dsn)
    assert ev.facts.freshness["users"] == pytest.approx(2400, abs=5)   # type: ignore[index]
    assert v.firing is True
    query(pg_dsn, "UPDATE netops.backlog_items SET state = 'done'")
    ev, v = _verdict(settings, pg_dsn)
    assert ev.facts.freshness["users"] == pytest.approx(60, abs=5)   # type: ignore[index]
    assert v.firing is False


def test_targets_come_from_one_declaration(settings_factory: Any, pg_dsn: str) -> None:
    settings = settings_factory(NETOPS_FRESHNESS_TARGETS="users=60", NETOPS_SCHEDULE_BACKLOG_MINUTES=10)
    assert freshness_target(settings, "users") == 3600.0
    assert freshness_target(settings, "cursus_users") == 1200.0   # 2 × 10 min
    _mark(pg_dsn, "users", 30)
    _mark(pg_dsn, "cursus_users", 30)
    ev, v = _verdict(settings, pg_dsn)
    assert v.firing is True and v.detail is not None and v.detail.startswith("cursus_users")
    assert "; users" not in v.detail


def test_campus_resources_are_as_fresh_as_their_stalest_campus(settings_factory: Any, pg_dsn: str) -> None:
    settings = settings_factory(NETOPS_CAMPUS_IDS="1,9")
    _mark(pg_dsn, "locations@1", 2)
    ev, _ = _verdict(settings, pg_dsn)
    assert ev.facts.freshness["locations"] is None   # type: ignore[index]   (campus 9 never read)
    _mark(pg_dsn, "locations@9", 7)
    ev, _ = _verdict(settings, pg_dsn)
    assert ev.facts.freshness["locations"] == pytest.approx(420, abs=5)   # type: ignore[index]
    assert "locations" not in (_verdict(settings_factory(), pg_dsn)[0].facts.freshness or {})   # no scope


def test_status_and_metrics_show_it(settings_factory: Any, pg_dsn: str) -> None:
    settings = settings_factory()
    for r in BACKLOG_BY_RESOURCE:
        _mark(pg_dsn, r, 2)
    _mark(pg_dsn, "users", 30)
    runner, env = CliRunner(), cli_env(settings)
    doc = json.loads(runner.invoke(cli, ["status", "--json"], env=env, catch_exceptions=False).output)
    assert doc["freshness"]["users"]["target_seconds"] == 600.0
    assert doc["freshness"]["users"]["seconds"] == pytest.approx(1800, abs=5)
    assert doc["freshness"]["users"]["ratio"] == pytest.approx(3.0, abs=0.02)
    assert "resource_stale" in doc["alerts"]["firing"]
    assert any(p["check"] == "resource_stale" and "users 1800" in p["message"] for p in doc["problems"])
    text = runner.invoke(cli, ["status"], env=env).output
    block = text[text.index("\nfreshness"):text.index("\napi")]   # one entry per resource, wrapped
    assert "users 30m/10m STALE" in block and "cursus_users 2m/10m" in block
    assert block.count("STALE") == 1
    prom = runner.invoke(cli, ["metrics", "export"], env=env, catch_exceptions=False).output
    assert 'netops_resource_freshness_seconds{resource="users"} 18' in prom
    assert 'netops_resource_freshness_target_seconds{resource="users"} 600.0' in prom
    assert 'netops_alert_firing{alert="resource_stale",severity="warning"} 1.0' in prom
    runner.invoke(cli, ["metrics", "write"], env=env, catch_exceptions=False)
    latest = json.loads((settings.metrics_path / "metrics_latest.json").read_text())
    assert latest["freshness"]["users"]["ratio"] == pytest.approx(3.0, abs=0.02)
    assert latest["alerts"]["resource_stale"]["state"] == "firing"


def test_dashboard_shows_it(settings_factory: Any, pg_dsn: str) -> None:
    from rich.console import Console

    from netops.monitor.dashboard import print_once

    settings = settings_factory()
    for r in BACKLOG_BY_RESOURCE:
        _mark(pg_dsn, r, 2)
    _mark(pg_dsn, "users", 30)
    console = Console(record=True, width=200, force_terminal=False)
    data = print_once(settings, pg_dsn, console=console)
    assert data.freshness is not None and data.freshness["users"]["ratio"] == pytest.approx(3.0, abs=0.02)
    out = console.export_text()
    line = next(x for x in out.splitlines() if x.startswith("freshness"))
    assert "users 30m/10m" in line and "cursus_users 2m/10m" in line


def test_status_page_shows_it(settings_factory: Any, pg_dsn: str, tmp_path: Any) -> None:
    """The role's status page (roles/nginx/templates/index.html.j2) in headless Chromium, on the
    status.json the status-json job writes."""
    from tests.integration import test_status_page_browser as page

    if page._missing_browser():
        pytest.skip(page._missing_browser() or "")
    settings = settings_factory()
    for r in BACKLOG_BY_RESOURCE:
        _mark(pg_dsn, r, 2)
    _mark(pg_dsn, "users", 30)
    web = page.web.__wrapped__(tmp_path)   # the fixtures' generators, driven by hand
    browser = page.browser.__wrapped__()
    try:
        root, url = next(web)
        driver = next(browser)
        page.write_files(settings, root)
        page.open_page(driver, url)
        shown = page.text(driver, "#freshness")
        assert shown.startswith("Freshness: users 30 min (target 10 min) STALE, projects_users 2 min (target 10 min)")
        assert shown.count("STALE") == 1
    finally:
        for gen in (web, browser):
            gen.close()
