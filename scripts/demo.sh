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
export NETOPS_LOG_DIR=${NETOPS_LOG_DIR:-$NETOPS_STATE_DIR/logs}   # and its own logs
export NETOPS_CONFIG=""      # and ignores /etc/netops/netops.toml
unset NETOPS_DSN
mkdir -p "$NETOPS_STATE_DIR"
ENV_FILE="$NETOPS_STATE_DIR/demo.env"
SIM_PID_FILE="$NETOPS_STATE_DIR/demo-sim.pid"
# A simulator left running by an earlier demo run is stopped first (by its recorded PID only).
if [ -s "$SIM_PID_FILE" ]; then
  OLD_PID=$(cat "$SIM_PID_FILE")
  if grep -q "netops" "/proc/$OLD_PID/cmdline" 2>/dev/null; then kill "$OLD_PID" 2>/dev/null || true; fi
  rm -f "$SIM_PID_FILE"
fi

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
KEEP_SIM=""
cleanup() {
  if [ -n "$SIM_PID" ] && [ -z "$KEEP_SIM" ]; then
    kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Credentials travel by environment or a 0600 file only (never argv), as on a real box.
umask 077
printf 'demo-secret-%s\n' "$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" >"$NETOPS_STATE_DIR/demo-secret"
export NETOPS_SIM_CLIENT_SECRET
NETOPS_SIM_CLIENT_SECRET=$(cat "$NETOPS_STATE_DIR/demo-secret")
umask 022
echo "==> starting the 42 API simulator on 127.0.0.1 (rate limit ${RATE}/s, 1200/h)"
# setsid: the simulator outlives this script, so the commands printed at the end work as printed
setsid "$NETOPS" sim serve --host 127.0.0.1 --port 0 --client-id demo-client --rate-per-second "$RATE" \
  --ready-file "$WORK/ready" >"$NETOPS_LOG_DIR/demo-simulator.out" 2>&1 </dev/null &
SIM_PID=$!
for _ in $(seq 1 200); do [ -s "$WORK/ready" ] && break; sleep 0.1; done
[ -s "$WORK/ready" ] || { echo "error: simulator did not start:"; cat "$NETOPS_LOG_DIR/demo-simulator.out"; exit 1; }

export NETOPS_API_URL
NETOPS_API_URL=$(cat "$WORK/ready")
export NETOPS_CLIENT_ID=demo-client NETOPS_CLIENT_SECRET_FILE="$NETOPS_STATE_DIR/demo-secret"
export NETOPS_RATE_PER_SECOND="$RATE"
unset NETOPS_CLIENT_SECRET
echo "==> netops sync stable  (API: $NETOPS_API_URL)"
"$NETOPS" sync stable

# Everything the follow-up commands need, in one file they source (no secret in it: a file path).
cat >"$ENV_FILE" <<ENV
export NETOPS_CONFIG=
export NETOPS_STATE_DIR=$NETOPS_STATE_DIR
export NETOPS_LOG_DIR=$NETOPS_LOG_DIR
export NETOPS_API_URL=$NETOPS_API_URL
export NETOPS_CLIENT_ID=$NETOPS_CLIENT_ID
export NETOPS_CLIENT_SECRET_FILE=$NETOPS_CLIENT_SECRET_FILE
export NETOPS_RATE_PER_SECOND=$RATE
unset NETOPS_DSN NETOPS_CLIENT_SECRET
ENV
echo "$SIM_PID" >"$SIM_PID_FILE"
KEEP_SIM=1

cat <<MSG

Done. The mirror stays in the local PostgreSQL and the simulator keeps running (PID $SIM_PID),
so every command below works as printed. In this directory, first
  . $ENV_FILE
then:
  .venv/bin/netops status                     # health, last sync per phase, row counts
  .venv/bin/netops token status               # the token the sync stored
  .venv/bin/netops sync stable --if-changed   # probe the simulator, pull only what moved
  .venv/bin/netops logs tail stable           # what the sync logged
  .venv/bin/netops db shell -c 'SELECT count(*) FROM projects'   # psql on the mirror
  .venv/bin/netops --help                     # every command
When done:
  kill $SIM_PID; .venv/bin/netops db down     # stop the simulator and the local PostgreSQL
MSG
