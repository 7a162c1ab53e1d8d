"""docs/grafana/netops.json uses only what netops exports (SPECS) and the recording rules
`netops alerts rules` defines: every metric name in every panel expression is checked, so a
rename in the exporter breaks this test, not an operator's dashboard. Each expression is also
parsed by promtool (`promtool check rules` on a rules file made of them) when it is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from netops.monitor.alerts import RECORDING_RULES
from netops.monitor.metrics import SPECS

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "netops.json"
#: PromQL words that look like identifiers: functions, aggregations, modifiers
PROMQL = {"sum", "by", "without", "increase", "rate", "time", "max", "min", "avg", "on", "group_left",
          "and", "or", "unless", "bool", "count", "vector"}
#: Prometheus' own series and labels a panel may read (the alerts it evaluates from netops' rules)
PROMETHEUS = {"ALERTS", "alertname", "alertstate"}


def expressions() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_every_expression_uses_exported_names_only() -> None:
    exported = {f"{n}_total" if s.type == "counter" else n for n, s in SPECS.items()}
    recorded = {r for r, _ in RECORDING_RULES}
    labels = {label for s in SPECS.values() for label in s.labels} | {"instance", "job"}
    exprs = expressions()
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        no_strings = re.sub(r'"[^"]*"', '""', expr)
        no_ranges = re.sub(r"\[[^\]]*\]", "", no_strings)
        for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", no_ranges):
            if word in PROMQL or word in labels or word in PROMETHEUS:
                continue
            assert word in exported or word in recorded, f"{word!r} in {expr!r} is not exported by netops"
            used.add(word)
    # the graphs the issue asks for are there: calls, sync duration, backlog depth, rows per table
    assert {"netops_api_calls_total", "netops_sync_last_run_duration_seconds", "netops_backlog_items",
            "netops_table_rows"} <= used


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed: `apt-get install -y prometheus` (.ci/run does it)")
def test_every_expression_parses(tmp_path: Path) -> None:
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, expr in enumerate(expressions()):
        lines += [f"      - record: dashboard:expr{i}:check", f"        expr: {json.dumps(expr)}"]
    (tmp_path / "d.yml").write_text("\n".join(lines) + "\n")
    out = subprocess.run(["promtool", "check", "rules", str(tmp_path / "d.yml")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def verdict_expr() -> str:
    doc = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in doc["panels"] if p["title"].startswith("Verdict")]
    return panel["targets"][0]["expr"]


def test_verdict_reads_prometheus_alerts() -> None:
    """The Verdict counts what Prometheus fires (ALERTS of the Netops* rules: what Alertmanager is
    told), not netops' own evaluation re-exported, and falls back to 0, never "No data"."""
    expr = verdict_expr()
    assert "ALERTS{" in expr and 'alertstate="firing"' in expr and "netops_alert_firing" not in expr
    assert expr.endswith("or vector(0)")


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not installed: `apt-get install -y prometheus` (scripts/test.sh does it)")
def test_verdict_is_0_when_healthy_and_counts_firing_alerts(tmp_path: Path) -> None:
    """Evaluated by promtool against netops' generated rules: a healthy box gives 0 (a value, so
    the stat shows 0), a box with the database down and 429s gives 2."""
    from netops.config import Settings
    from netops.monitor.alerts import prometheus_rules

    (tmp_path / "rules.yml").write_text(prometheus_rules(Settings()))
    box = 'instance="box1",job="netops"'

    def series(db_up: str, c429: str) -> list[dict[str, str]]:
        return [{"series": f"up{{{box}}}", "values": "1x20"},
                {"series": f"netops_database_up{{{box}}}", "values": db_up},
                {"series": f'netops_alert_threshold{{alert="database_down",{box}}}', "values": "1x20"},
                {"series": f'netops_alert_threshold{{alert="api_rate_limited",{box}}}', "values": "0x20"},
                {"series": f'netops_api_calls_last_hour{{code="429",{box}}}', "values": c429}]

    tests = [{"name": name, "interval": "1m", "input_series": series(db_up, c429),
              "promql_expr_test": [{"expr": verdict_expr(), "eval_time": "10m", "exp_samples": [{"labels": "{}",
                                                                                              "value": value}]}]}
             for name, db_up, c429, value in (("healthy", "1x20", "0x20", 0), ("two firing", "0x20", "3x20", 2))]
    import yaml

    (tmp_path / "t.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                    "tests": tests}))
    out = subprocess.run(["promtool", "test", "rules", "t.yml"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
