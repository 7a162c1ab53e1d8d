"""The export and the generated rules, checked by the real promtool (Debian's `prometheus`
package; .ci/run installs it): `check metrics` on a busy box's export reports nothing,
`check rules` accepts the rules, and `promtool test rules` runs unit tests for every rule in
four cases: firing, not firing, database down (a firing database-derived alert keeps firing),
target down (the rule resolves and NetopsTargetDown / NetopsMetricsAbsent fire instead)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from netops.cli import cli
from netops.monitor import alerts
from tests.integration.test_monitor_metrics import busy_box  # noqa: F401  (fixture)
from tests.integration.test_monitor_seed import cli_env

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed: `apt-get install -y prometheus` (.ci/run does it)")

BOX = {"instance": "box1", "job": "netops"}

#: per rule: (metric selector with its own labels, firing value, clear value, extra alert labels).
#: Thresholds are the defaults' (netops_alert_threshold below), except the ages (60 s), so that
#: "never synced" (timestamp 0) is past it at the test's small clock.
AGE_RULES = {"sync_age", "backup_age"}
CASES: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "database_down": ("netops_database_up", "0", "1", {}),
    "schema_missing": ("netops_schema_present", "0", "1", {}),
    "api_calls_per_minute": ('netops_api_calls_total{endpoint="/v2/users",code="200"}', "0+600", "0+5", {}),
    "api_unauthorized": ('netops_api_calls_last_hour{code="401"}', "2", "0", {}),
    "api_rate_limited": ('netops_api_calls_last_hour{code="429"}', "3", "0", {}),
    "api_key_set_aside": ('netops_api_key_set_aside{key="second"}', "1", "0", {"key": "second"}),
    "db_size": ("netops_database_size_bytes", "2e10", "1e6", {}),
    "log_size": ("netops_log_bytes", "2e9", "1e3", {}),
    "sync_duration": ("netops_sync_last_run_duration_seconds", "700", "10", {}),
    "sync_failed": ('netops_sync_last_run_failed{phase="projects"}', "1", "0", {}),
    "sync_interrupted": ('netops_sync_last_run_interrupted{phase="projects"}', "1", "0", {}),
    "sync_age": ('netops_sync_last_success_timestamp_seconds{phase="campuses"}', "0", "0+60",
                 {"phase": "campuses"}),
    "backlog_depth": ('netops_backlog_items{state="pending"}', "20000", "5", {}),
    "backlog_failed": ('netops_backlog_items{state="failed"}', "3", "0", {}),
    "data_quality": ("netops_data_quality_violations", "2", "0", {}),
    "disk_low": ('netops_disk_free_ratio{dir="log_dir"}', "0.07", "0.5", {}),
    "disk_critical": ('netops_disk_free_ratio{dir="state_dir"}', "0.02", "0.5", {}),
    "backup_age": ("netops_backup_last_success_timestamp_seconds", "0", "0+60", {}),
    "backup_failed": ("netops_backup_last_failed", "1", "0", {}),
    "token": ("netops_token_usable", "0", "1", {}),
    "secret_expiring": ("netops_secret_expiry_timestamp_seconds", "259200", "5184000", {}),
    "secret_expired": ("netops_secret_expiry_timestamp_seconds", "0", "5184000", {}),
    "nginx_down": ("netops_nginx_up", "0", "1", {}),
}


def labelled(selector: str) -> str:
    """`name{a="b"}` with the target's instance/job added (what a scrape attaches)."""
    box = ",".join(f'{k}="{v}"' for k, v in BOX.items())
    if "{" in selector:
        return selector[:-1] + "," + box + "}"
    return selector + "{" + box + "}"


def thresholds(settings: Any) -> list[dict[str, str]]:
    out = []
    for r in alerts.RULES:
        t = 60.0 if r.name in AGE_RULES else r.prom_threshold(settings)
        out.append({"series": labelled(f'netops_alert_threshold{{alert="{r.name}"}}'), "values": f"{t!r}x40"})
    return out


def expected(rule: alerts.Rule, extra: dict[str, str]) -> list[dict[str, Any]]:
    return [{"exp_labels": {"severity": rule.severity, **BOX, **extra},
             "exp_annotations": {"summary": rule.summary, "description": rule.action}}]


def unit_tests(settings: Any) -> dict[str, Any]:
    """One promtool test group per rule and case."""
    tests = []
    for rule in alerts.RULES:
        selector, fire, clear, extra = CASES[rule.name]
        alert = alerts._camel(rule.name)
        own_up = rule.name == "database_down"

        def up(values: str, own: bool = own_up) -> list[dict[str, str]]:
            return [] if own else [{"series": labelled("netops_database_up"), "values": values}]

        def series(values: str, selector: str = selector) -> dict[str, str]:
            return {"series": labelled(selector), "values": values}

        for case, vals in (("firing", fire), ("not firing", clear)):
            tests.append({"name": f"{rule.name}: {case}", "interval": "1m",
                          "input_series": thresholds(settings) + up("1x40") + [series(f"{vals}x40")],
                          "alert_rule_test": [{"eval_time": "5m", "alertname": alert,
                                               "exp_alerts": expected(rule, extra) if case == "firing" else []}]})
        if rule.name != "database_down":
            # database down at 6m: database-derived series vanish; a firing alert must stay
            # firing (not resolve, not re-page); back at 20m with a clear value, it resolves.
            # Rules on local facts (disk, logs, token, nginx) keep their series: still firing.
            gone = "_x14" if rule.from_db else f"{fire}x14"
            later = "1200+60" if rule.name in AGE_RULES else clear  # synced (backed up) again at 20m
            tests.append({"name": f"{rule.name}: database down", "interval": "1m",
                          "input_series": thresholds(settings) + up("1x5 0x14 1x20")
                          + [series(f"{fire}x5 {gone} {later}x20")],
                          "alert_rule_test": [
                              {"eval_time": "15m", "alertname": alert, "exp_alerts": expected(rule, extra)},
                              {"eval_time": "38m", "alertname": alert, "exp_alerts": []}]})
        # target down at 6m: every netops series goes stale, `up` is 0.
        tests.append({"name": f"{rule.name}: target down", "interval": "1m",
                      "input_series": [{"series": labelled("up"), "values": "1x5 0x40"}]
                      + [dict(s, values=s["values"].replace("x40", "x5 stale")) for s in thresholds(settings)]
                      + up("1x5 stale") + [series(f"{fire}x5 stale")],
                      "alert_rule_test": [
                          {"eval_time": "3m", "alertname": alert, "exp_alerts": expected(rule, extra)},
                          {"eval_time": "30m", "alertname": alert, "exp_alerts": []},
                          {"eval_time": "30m", "alertname": "NetopsTargetDown", "exp_alerts": [
                              {"exp_labels": {"severity": "critical", **BOX},
                               "exp_annotations": _annotations("NetopsTargetDown")}]}]})
    return {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}


def _annotations(alert: str) -> dict[str, str]:
    for group in yaml.safe_load(alerts.prometheus_rules(_SETTINGS[0]))["groups"]:
        for r in group["rules"]:
            if r.get("alert") == alert:
                return dict(r["annotations"])
    raise KeyError(alert)


_SETTINGS: list[Any] = []


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_every_rule_has_promtool_cases() -> None:
    assert set(CASES) == {r.name for r in alerts.RULES}


def test_export_passes_promtool_check_metrics(busy_box: Any) -> None:  # noqa: F811
    result = CliRunner().invoke(cli, ["metrics", "export"], env=cli_env(busy_box), catch_exceptions=False)
    assert result.exit_code == 0
    assert "netops_api_calls_total{" in result.output and "netops_sync_runs_total{" in result.output
    checked = promtool("check", "metrics", stdin=result.output)
    assert checked.returncode == 0 and checked.stdout.strip() == "" and checked.stderr.strip() == "", \
        checked.stdout + checked.stderr


def test_database_down_export_passes_promtool_check_metrics(settings_factory: Any) -> None:
    settings = settings_factory(NETOPS_DSN="postgresql://x@127.0.0.1:1/x")
    result = CliRunner().invoke(cli, ["metrics", "export"], env=cli_env(settings), catch_exceptions=False)
    assert "netops_database_up 0.0" in result.output
    checked = promtool("check", "metrics", stdin=result.output)
    assert checked.returncode == 0 and (checked.stdout + checked.stderr).strip() == "", checked.stdout + checked.stderr


def test_rules_pass_check_and_unit_tests(settings_factory: Any, tmp_path: Path) -> None:
    settings = settings_factory()
    _SETTINGS[:] = [settings]
    result = CliRunner().invoke(cli, ["alerts", "rules"], env=cli_env(settings), catch_exceptions=False)
    assert result.exit_code == 0
    (tmp_path / "rules.yml").write_text(result.output)
    checked = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    doc = unit_tests(settings)
    assert len(doc["tests"]) == 4 * len(alerts.RULES) - 1  # database_down has no "database down" case
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    tested = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout[-6000:] + tested.stderr[-3000:]
    assert "SUCCESS" in tested.stdout + tested.stderr
