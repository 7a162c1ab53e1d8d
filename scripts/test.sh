#!/usr/bin/env bash
# The whole Python test suite: lint, unit (incl. the Ansible modules), integration (a real
# PostgreSQL started by the tests themselves, the simulator over real HTTP), reliability.
# Sets up .venv on first use. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev,deploy]' >.venv/install.log 2>&1; then
  cat .venv/install.log; echo "error: pip install failed (log above)"; exit 1
fi
.venv/bin/ruff check .
exec .venv/bin/pytest "$@"
