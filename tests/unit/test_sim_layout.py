"""The simulator's modules import one way, and its defaults are netops.config's."""

from __future__ import annotations

import ast
from pathlib import Path

import netops.sim
from netops import config
from netops.sim import SimConfig

SIM_DIR = Path(netops.sim.__file__).parent


def _imports(module: str) -> set[str]:
    """Every netops module a file under netops/sim imports, at the top or inside a function."""
    tree = ast.parse((SIM_DIR / f"{module}.py").read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("netops")}


def test_control_client_and_routes_do_not_import_the_server() -> None:
    for module in ("control", "control_routes"):
        assert "netops.sim.server" not in _imports(module), module
    assert "netops.sim.control" not in _imports("server")


def test_sim_defaults_are_the_configured_budget_and_address() -> None:
    cfg = SimConfig()
    assert cfg.rate_per_second == config.API_RATE_PER_SECOND
    assert cfg.rate_per_hour == config.API_RATE_PER_HOUR
    assert cfg.host == config.SIM_HOST
