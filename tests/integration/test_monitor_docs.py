"""docs/observability.md's metric table is generated from SPECS and must equal it; a real export
carries no family outside SPECS, and every family SPECS declares shows up on a busy box (but the
ones that depend on something this box does not have, said here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from netops.cli import cli
from netops.monitor import metrics
from tests.integration.test_monitor_metrics import busy_box  # noqa: F401  (fixture)
from tests.integration.test_monitor_seed import cli_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
#: families a busy test box legitimately lacks: no NETOPS_NGINX_URL configured, no backup taken
#: (tests/integration/test_backup_restore.py exports them after one)
NOT_ON_THIS_BOX = {"netops_nginx_up", "netops_backup_last_success_timestamp_seconds", "netops_backup_last_bytes",
                   "netops_backup_last_failed"}


def test_doc_table_is_the_generated_one() -> None:
    text = DOC.read_text()
    begin, end = "<!-- metric-table:begin -->\n", "<!-- metric-table:end -->"
    assert begin in text and end in text
    table = text[text.index(begin) + len(begin):text.index(end)]
    assert table == metrics.metric_table(), "regenerate: python -c 'from netops.monitor.metrics import " \
                                            "metric_table; print(metric_table())'"


def test_export_matches_specs(busy_box: Any) -> None:  # noqa: F811
    result = CliRunner().invoke(cli, ["metrics", "export"], env=cli_env(busy_box), catch_exceptions=False)
    families = {f.name: f for f in text_string_to_metric_families(result.output)}
    assert set(families) <= set(metrics.SPECS), set(families) - set(metrics.SPECS)
    assert set(metrics.SPECS) - set(families) == NOT_ON_THIS_BOX
    for name, fam in families.items():
        spec = metrics.SPECS[name]
        assert fam.type == spec.type, name
        for sample in fam.samples:
            assert set(sample.labels) == set(spec.labels), (name, sample.labels)
