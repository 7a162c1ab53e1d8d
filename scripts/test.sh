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
# promtool (Debian's prometheus package) for tests/integration/test_monitor_promtool.py, prometheus
# and prometheus-alertmanager (+ amtool) for tests/integration/test_prometheus_alertmanager.py, and a
# headless browser (Debian's chromium + chromium-driver) for tests/integration/test_status_page_browser.py:
# installed here when this is a root Debian box; elsewhere those tests skip, naming this install
pkgs=""
command -v promtool >/dev/null 2>&1 || pkgs="$pkgs prometheus"
{ command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; } || pkgs="$pkgs prometheus-alertmanager"
{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || pkgs="$pkgs chromium chromium-driver"
if [ -n "$pkgs" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing$pkgs (apt-get install)"
  # shellcheck disable=SC2086 # one word per package
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs; } >.venv/apt-tools.log 2>&1 \
    || { cat .venv/apt-tools.log; echo "error: apt-get install$pkgs failed (log above)"; exit 1; }
fi
.venv/bin/ruff check .
exec .venv/bin/pytest "$@"
