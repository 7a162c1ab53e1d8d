#!/usr/bin/env bash
# The main job on the embedded default, from nothing: a virtualenv, a local PostgreSQL that netops
# starts itself, the bundled 42 API simulator, and one full stable sync (phases 01-08).
#
#   bash scripts/demo.sh            # paced like the real API (2 calls/s): about a minute
#   DEMO_RATE=20 bash scripts/demo.sh   # faster, with a simulator allowing 20 calls/s
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RATE=${DEMO_RATE:-2}

# The demo keeps its own state (token, local PostgreSQL) apart from a real deployment's.
if [ "$(id -u)" = 0 ]; then
  export NETOPS_STATE_DIR=${NETOPS_STATE_DIR:-/var/lib/netops-demo}
else
  export NETOPS_STATE_DIR=${NETOPS_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/netops-demo}
fi
export NETOPS_CONFIG=""      # and ignores /etc/netops/netops.toml
unset NETOPS_DSN

if [ ! -x .venv/bin/netops ]; then
  echo "==> creating .venv (first run only)"
  python3 -m venv .venv
fi
echo "==> installing netops into .venv"
if ! .venv/bin/pip install --quiet --disable-pip-version-check -e . >.venv/install.log 2>&1; then
  cat .venv/install.log; echo "error: pip install failed (log above)"; exit 1
fi
NETOPS="$ROOT/.venv/bin/netops"

echo "==> starting the local PostgreSQL (embedded default: no NETOPS_DSN)"
"$NETOPS" db up >/dev/null
"$NETOPS" db migrate

WORK=$(mktemp -d)
chmod 700 "$WORK"
SIM_PID=""
cleanup() {
  if [ -n "$SIM_PID" ]; then kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Credentials travel by environment only (never argv), as on a real box.
export NETOPS_SIM_CLIENT_SECRET="demo-secret-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
echo "==> starting the 42 API simulator on 127.0.0.1 (rate limit ${RATE}/s, 1200/h)"
"$NETOPS" sim serve --host 127.0.0.1 --port 0 --client-id demo-client --rate-per-second "$RATE" \
  --ready-file "$WORK/ready" >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 1 200); do [ -s "$WORK/ready" ] && break; sleep 0.1; done
[ -s "$WORK/ready" ] || { echo "error: simulator did not start:"; cat "$WORK/sim.log"; exit 1; }

export NETOPS_API_URL
NETOPS_API_URL=$(cat "$WORK/ready")
export NETOPS_CLIENT_ID=demo-client NETOPS_CLIENT_SECRET="$NETOPS_SIM_CLIENT_SECRET"
export NETOPS_RATE_PER_SECOND="$RATE"
echo "==> netops sync stable  (API: $NETOPS_API_URL)"
"$NETOPS" sync stable

cat <<MSG

Done. The mirror stays in the local PostgreSQL. To look further, first
  export NETOPS_STATE_DIR=$NETOPS_STATE_DIR NETOPS_CONFIG=
then:
  .venv/bin/netops db shell                   # psql on the mirror
  .venv/bin/netops status                     # health, last sync per phase, row counts
  tail logs/nightly_stable_tables.log         # what the sync logged
  .venv/bin/netops --help                     # every command
  .venv/bin/netops db down                    # stop the local PostgreSQL
MSG
