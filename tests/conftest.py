"""Shared fixtures: a real PostgreSQL (tests/fixtures/pg.py) and the 42 API simulator over real
HTTP (tests/fixtures/sim.py)."""

pytest_plugins = ["tests.fixtures.pg", "tests.fixtures.sim"]
