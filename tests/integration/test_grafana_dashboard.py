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
          "and", "or", "unless", "bool"}


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
            if word in PROMQL or word in labels:
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
