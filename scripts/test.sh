#!/usr/bin/env bash
# The whole Python test suite: lint, unit, integration (real PostgreSQL started by the tests
# themselves, the simulator over real HTTP). Sets up .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/pytest ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
.venv/bin/pip install --quiet -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/ruff check .
exec .venv/bin/pytest "$@"
