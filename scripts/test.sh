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
# promtool (Debian's prometheus package) for tests/integration/test_monitor_promtool.py: installed
# here when this is a root Debian box; elsewhere those tests skip, naming this install
if ! command -v promtool >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing promtool (apt-get install prometheus)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >.venv/apt-promtool.log 2>&1 \
    || { cat .venv/apt-promtool.log; echo "error: apt-get install prometheus failed (log above)"; exit 1; }
fi
.venv/bin/ruff check .
exec .venv/bin/pytest "$@"
