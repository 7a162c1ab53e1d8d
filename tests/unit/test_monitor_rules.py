"""The rule table's threshold settings are checked where the rules are declared."""

from __future__ import annotations

import pytest

from netops.config import FIELDS
from netops.monitor.evaluation import RULES, Rule


def test_every_rule_threshold_names_a_setting() -> None:
    names = {f.name for f in FIELDS}
    assert all(r.setting in names for r in RULES if r.setting is not None)
    assert any(r.setting is not None for r in RULES)


def test_a_misspelt_threshold_setting_is_refused_where_the_rule_is_declared() -> None:
    with pytest.raises(ValueError, match="no setting named 'alert_calls_per_mn'"):
        Rule(name="x", summary="", value=lambda f: None, unit="", action="", prom_expr="",
             setting="alert_calls_per_mn")
