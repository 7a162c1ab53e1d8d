#!/usr/bin/env bash
# The fleet scenario: deploy.yml and status.yml on three separate Debian 12 hosts made on this
# machine (podman containers from a debootstrap image), reached by Ansible over SSH with a key.
#   tests/ansible/fleet/run.sh         # everything: hosts up, every assertion, hosts down
#   tests/ansible/fleet/run.sh lint    # ansible-lint (production profile) + --syntax-check only
#   FLEET_FROM=11 tests/ansible/fleet/run.sh   # development: one plain deploy instead of steps 1-10
#                                              # (FLEET_FROM=12..14: steps 11.. left out too)
# Steps 1-10 deploy this checkout and use it; 11-13 are a box's life (docs/deploy.md "The fleet
# scenario: upgrade, rebuild, full disk"): 11 the previous release (tag v0.1.0) upgraded in place,
# 12 a host destroyed and rebuilt from its backup, 13 a full disk under its state and logs; 14
# times event to notification on a deployed host for both alert paths (docs/observability.md).
# Needs root. Installs what it uses (podman, runc, debootstrap, prometheus, ...) with apt when missing.
#
# Hosts (tests/ansible/fleet/inventory, the worked example of docs/deploy.md):
#   netops-01 10.89.42.11  systemd as PID 1 (like a VM)
#   netops-02 10.89.42.12  systemd as PID 1, netops_first_sync: false
#   netops-03 10.89.42.13  no service manager: podman's init runs sshd in the foreground
# on an internal podman network (no route out). The gateway, 10.89.42.1, serves the hosts a flat
# apt repository and a pip index (image.sh builds both, cached) and the 42 API simulator.
#
# Why not molecule: its podman driver reaches hosts through `podman exec` (not SSH with a key,
# which is what users do and where the login-uid trap lives), has no step for the servers on the
# gateway, and its fixed test sequence has no place for "--check on a stopped cluster", reboots
# or an unreachable host. Each step below is one thing a user would do, then what they would check.
set -euo pipefail

main() {
    here="$(cd "$(dirname "$0")" && pwd)"
    repo="$(cd "$here/../../.." && pwd)"
    if [ -x "$repo/.venv/bin/ansible-playbook" ]; then
        export PATH="$repo/.venv/bin:$PATH"
    fi
    export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1 ANSIBLE_NOCOLOR=1
    export ANSIBLE_CONFIG="$repo/ansible.cfg"
    case "${1:-test}" in
        lint) lint ;;
        test) lint; scenario ;;
        *) echo "usage: $0 [test|lint]" >&2; return 2 ;;
    esac
}

lint() {
    cd "$repo"
    echo "== ansible-lint (production profile)"
    ansible-lint --profile production --offline
    echo "== ansible-playbook --syntax-check"
    for pb in deploy.yml status.yml playbooks/deploy.yml playbooks/status.yml tests/ansible/fleet/*.yml; do
        ansible-playbook -i "$here/inventory" --syntax-check "$pb" >/dev/null
        echo "ok  $pb"
    done
}

NET=netops-fleet
SUBNET=10.89.42.0/24
GW=10.89.42.1
MIRROR_PORT=8741
SIM_PORT=8742
HOSTS=(netops-01 netops-02 netops-03)
declare -A IP=([netops-01]=10.89.42.11 [netops-02]=10.89.42.12 [netops-03]=10.89.42.13)
declare -A KIND=([netops-01]=systemd [netops-02]=systemd [netops-03]=noinit)

P() { podman --cgroup-manager cgroupfs --events-backend file --runtime runc "$@"; }
say() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; FAILED=$((FAILED + 1)); }
ok() { echo "ok   $*"; PASSED=$((PASSED + 1)); }
check() {  # check "what" command...: one assertion
    local what="$1"; shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

tools() {
    local need=()
    for t in podman:podman runc:runc debootstrap:debootstrap dpkg-scanpackages:dpkg-dev ssh:openssh-client \
             ssh-keygen:openssh-client iptables:iptables /usr/libexec/podman/catatonit:catatonit \
             prometheus:prometheus prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager; do
        command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        say "apt-get install ${need[*]}"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" \
            netavark aardvark-dns uidmap >/dev/null
    fi
}

cleanup() {
    set +e
    [ -n "${SERVER_PIDS:-}" ] && kill $SERVER_PIDS 2>/dev/null
    for h in "${HOSTS[@]}"; do P rm -f -t 5 "fleet-$h" >/dev/null 2>&1; done
    P network rm -f "$NET" >/dev/null 2>&1
    [ -n "${SMALL:-}" ] && mountpoint -q "$SMALL" && umount "$SMALL"
    # netavark turned IP forwarding on for the bridge: give the machine back as it was
    [ -n "${FORWARD_WAS:-}" ] && sysctl -q -w net.ipv4.ip_forward="$FORWARD_WAS"
    [ -n "${RUN:-}" ] && [ "${FLEET_KEEP:-0}" != 1 ] && rm -rf "$RUN"
}

start_host() {  # start_host HOST [more podman run arguments]
    local h="$1"; shift
    local args=(--name "fleet-$h" --hostname "$h" --network "$NET" --ip "${IP[$h]}"
        --ulimit nofile=20000:20000 --ulimit nproc=8192:8192 --cgroup-parent "$CGROUP"
        -v "$RUN/id_ed25519.pub:/home/deploy/.ssh/authorized_keys:ro" -d "$@")
    if [ "${KIND[$h]}" = systemd ]; then
        P run "${args[@]}" --systemd always "$IMAGE" /sbin/init >/dev/null
    else
        # a bare container: podman's init as PID 1, sshd in the foreground, nothing else
        P run "${args[@]}" --init "$IMAGE" sh -c 'ssh-keygen -A -q && mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e' >/dev/null
    fi
}

wait_ssh() {
    local h
    for h in "$@"; do
        for _ in $(seq 60); do
            ssh "${SSH_OPTS[@]}" "deploy@${IP[$h]}" true 2>/dev/null && continue 2
            sleep 1
        done
        echo "error: $h (${IP[$h]}) does not answer SSH" >&2
        return 1
    done
}

# ansible-playbook with the fleet's inventory and vault; output kept in $RUN/NN-name.log; the
# PLAY RECAP lines are echoed and appended to $RUN/recaps.txt. Sets RC.
PB_N=0
pb() {
    local name="$1"; shift
    PB_N=$((PB_N + 1))
    local log; log="$(printf '%s/%02d-%s.log' "$RUN" "$PB_N" "$name")"
    local t0=$SECONDS errexit=0
    [[ $- == *e* ]] && errexit=1
    set +e
    # PB_ROOT/PB_SRC: another checkout's playbooks, roles and package (step 11's previous release)
    local root="${PB_ROOT:-$repo}"
    (cd "$root" && ANSIBLE_CONFIG="$root/ansible.cfg" ansible-playbook -i "$RUN/inventory" \
        --vault-password-file "$RUN/vault-pass" -e netops_source_dir="${PB_SRC:-$RUN/src}" "$@") >"$log" 2>&1
    RC=$?
    [ "$errexit" = 0 ] || set -e   # as it was: steps 11-13 run without errexit
    LAST_LOG="$log"
    {
        echo "--- $name: ansible-playbook $* -> exit $RC in $((SECONDS - t0)) s"
        sed -n '/^PLAY RECAP/,$p' "$log" | grep -E '^\S+ +: ok=' | sed -E 's/ +/ /g'
    } | tee -a "$RUN/recaps.txt"
}
recap() { grep -E "^$1 +: ok=" "$LAST_LOG" | tail -n1; }
# task_status "role : Task name" HOST -> ok / changed / skipping / failed / fatal (last seen), from
# that task's block of the last run's output
task_status() {
    awk -v t="TASK [$1]" -v h="$2" '
        index($0, t) == 1 { on = 1; next }
        /^(TASK|RUNNING HANDLER|PLAY)/ { on = 0 }
        on && /^(ok|changed|skipping|failed|fatal):/ && (index($0, "[" h "]") || index($0, "[" h " ")) {
            split($0, a, ":"); s = a[1] }
        END { print s }' "$LAST_LOG"
}
changed_of() { recap "$1" | sed -E 's/.*changed=([0-9]+).*/\1/'; }
shown() { [ "$RC" -ne 0 ] && { echo "--- tail of $LAST_LOG"; tail -n 40 "$LAST_LOG"; }; return 0; }

on() { local h="$1"; shift; ssh "${SSH_OPTS[@]}" "deploy@${IP[$h]}" sudo "$@"; }

scenario() {
    FAILED=0 PASSED=0
    local t_start=$SECONDS
    tools
    trap cleanup EXIT
    say "image and mirror (cached under ${FLEET_CACHE:-/var/cache/netops-fleet})"
    local t0=$SECONDS cache key
    cache="$(bash "$here/image.sh")"
    key="$(basename "$cache")"
    IMAGE="localhost/netops-fleet:$key"
    P image exists "$IMAGE" || P import -q "$cache/rootfs.tar" "$IMAGE" >/dev/null
    # images of older recipes
    P images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/netops-fleet:' | grep -vx "$IMAGE" \
        | xargs -r podman rmi -f >/dev/null 2>&1 || true
    echo "image $IMAGE ready in $((SECONDS - t0)) s"

    RUN="$(mktemp -d /tmp/netops-fleet.XXXXXX)"
    CGROUP="$(awk -F: '$3 != "/" && $3 != "" {print $3; exit}' /proc/self/cgroup)"
    CGROUP="${CGROUP:-/}"
    FORWARD_WAS="$(sysctl -n net.ipv4.ip_forward)"
    ssh-keygen -q -t ed25519 -N '' -C fleet -f "$RUN/id_ed25519"
    chmod 0644 "$RUN/id_ed25519.pub"
    SSH_OPTS=(-i "$RUN/id_ed25519" -o UserKnownHostsFile="$RUN/known_hosts" -o StrictHostKeyChecking=accept-new
              -o ConnectTimeout=5 -o BatchMode=yes)
    export ANSIBLE_PRIVATE_KEY_FILE="$RUN/id_ed25519"
    export ANSIBLE_SSH_ARGS="-o UserKnownHostsFile=$RUN/known_hosts -o StrictHostKeyChecking=accept-new -o ControlMaster=auto -o ControlPersist=120s -o ControlPath=$RUN/cm-%C"

    say "hosts up"
    t0=$SECONDS
    for h in "${HOSTS[@]}"; do P rm -f -t 0 "fleet-$h" >/dev/null 2>&1 || true; done
    P network rm -f "$NET" >/dev/null 2>&1 || true
    P network create --internal --subnet "$SUBNET" --gateway "$GW" "$NET" >/dev/null
    for h in "${HOSTS[@]}"; do start_host "$h"; done
    # the gateway's servers: the bridge has its address once a container is attached
    python3 -m http.server "$MIRROR_PORT" --bind "$GW" --directory "$cache" >"$RUN/mirror.log" 2>&1 &
    SERVER_PIDS="$!"
    local sim_secret; sim_secret="$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    NETOPS_SIM_CLIENT_SECRET="$sim_secret" "$repo/.venv/bin/netops" sim serve --host "$GW" --port "$SIM_PORT" \
        --client-id fleet-client --rate-per-second 0 --rate-per-hour 0 --backlog-scale 0.01 \
        --ready-file "$RUN/sim.ready" >"$RUN/sim.log" 2>&1 &
    SERVER_PIDS="$SERVER_PIDS $!"
    for _ in $(seq 60); do [ -s "$RUN/sim.ready" ] && break; sleep 0.5; done
    [ -s "$RUN/sim.ready" ] || { cat "$RUN/sim.log"; echo "error: simulator did not start" >&2; return 1; }
    wait_ssh "${HOSTS[@]}"
    echo "3 hosts answer SSH in $((SECONDS - t0)) s"
    # no default route (destination 00000000 in the kernel's table): nothing leaves the machine
    for h in "${HOSTS[@]}"; do
        check "$h has no route out" bash -c "! ssh ${SSH_OPTS[*]} deploy@${IP[$h]} cat /proc/net/route | awk '\$2 == \"00000000\"' | grep -q ."
    done

    # the package is built from a snapshot of the sources taken now, so an edit made to the
    # checkout while the scenario runs cannot make the second deploy rebuild
    mkdir -p "$RUN/src"
    (cd "$repo" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml README.md netops) | tar -C "$RUN/src" -xf -

    # the user's inventory: the committed one, plus a vault with this run's secrets
    cp -r "$here/inventory" "$RUN/inventory"
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$RUN/vault-pass"
    chmod 0600 "$RUN/vault-pass"
    cat >"$RUN/inventory/group_vars/all/vault.yml" <<VAULT
---
vault_netops_client_id: fleet-client
vault_netops_client_secret: "$sim_secret"
vault_netops_db_password: "fl'eet\\\\p/w@:%-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
VAULT
    ansible-vault encrypt --vault-password-file "$RUN/vault-pass" "$RUN/inventory/group_vars/all/vault.yml"
    check "the vault is encrypted" grep -q '^\$ANSIBLE_VAULT' "$RUN/inventory/group_vars/all/vault.yml"

    local t_old=$SECONDS
    if [ "${FLEET_FROM:-1}" -le 10 ]; then
        steps_1_to_10
        echo "steps 1-10 took $((SECONDS - t_old)) s"
    else  # development only (FLEET_FROM=11): a plain deploy, then where step 10 leaves the fleet
        say "steps 1-10 skipped (FLEET_FROM=$FLEET_FROM): deploy, netops-03 stopped"
        pb deploy deploy.yml
        shown; check "deploy exits 0" test "$RC" -eq 0
        P stop -t 5 fleet-netops-03 >/dev/null
    fi
    local t_new=$SECONDS
    # from here a failed command is a failed check, not the end of the run
    set +e
    [ "${FLEET_FROM:-1}" -le 11 ] && step_upgrade
    [ "${FLEET_FROM:-1}" -le 12 ] && step_rebuild
    [ "${FLEET_FROM:-1}" -le 13 ] && step_full_disk
    step_latency
    set -e
    echo "steps 11-14 took $((SECONDS - t_new)) s"

    say "summary"
    echo "PLAY RECAPs:"; cat "$RUN/recaps.txt"
    echo "fleet scenario wall time: $((SECONDS - t_start)) s"
    echo "fleet: $PASSED passed, $FAILED failed"
    if [ "$FAILED" -gt 0 ]; then
        echo "logs kept in $RUN"
        FLEET_KEEP=1
        return 1
    fi
}

# steps 1-10: one deploy of this checkout on three new hosts, and what a user does with them after
steps_1_to_10() {

    say "1. --check --diff on fresh hosts"
    pb check-fresh deploy.yml --check --diff
    shown; check "fresh-host --check --diff exits 0" test "$RC" -eq 0

    say "2. deploy"
    pb deploy deploy.yml
    shown; check "deploy exits 0" test "$RC" -eq 0
    check "deploy ended with the first stable sync on netops-01 and netops-03" \
        test "$(task_status 'netops : Run the first stable sync (netops sync stable)' netops-01)$(task_status 'netops : Run the first stable sync (netops sync stable)' netops-03)" = changedchanged
    check "netops_first_sync: false turned it off on netops-02" \
        test "$(task_status 'netops : Run the first stable sync (netops sync stable)' netops-02)" = skipping
    # Ours only: ansible-core's own import of DSA draws a CryptographyDeprecationWarning from
    # recent cryptography releases (51.0.1 here) at every start: no playbook or template of ours causes it.
    check "deploy prints no Python warning (a template's regex once drew a FutureWarning per host)" \
        bash -c "! grep -E 'FutureWarning|DeprecationWarning|errantly sent data' '$LAST_LOG' | grep -qv CryptographyDeprecationWarning"

    say "3. second deploy changes nothing"
    pb deploy-again deploy.yml
    shown; check "second deploy exits 0" test "$RC" -eq 0
    for h in "${HOSTS[@]}"; do check "second deploy: changed=0 on $h ($(recap "$h"))" test "$(changed_of "$h")" = 0; done

    say "4. what a user checks on each box"
    pb verify tests/ansible/fleet/verify.yml
    shown; check "verify.yml passes on every host" test "$RC" -eq 0

    say "5. cron runs every job by itself, on every host (every job every minute for the proof)"
    pb cron-proof tests/ansible/fleet/cron_proof.yml
    shown; check "cron ran every job on every host, netops-03 (no service manager) included" test "$RC" -eq 0
    pb deploy-restores-cron deploy.yml
    shown; check "deploy puts the schedule back" test "$RC" -eq 0

    say "6. status.yml on the healthy fleet"
    pb status-ok status.yml
    shown; check "status.yml exits 0 on a healthy fleet" test "$RC" -eq 0
    for h in "${HOSTS[@]}"; do
        check "status.yml: $h is ok" grep -qE "^\s*$h +ok +- " "$LAST_LOG"
    done

    say "6b. a broken nginx configuration fails the deploy before nginx reloads it"
    # a changed site (server_name) notifies the reload; a stray file nginx includes breaks `nginx -t`
    on netops-02 "sh -c 'echo this-is-no-directive on\; > /etc/nginx/conf.d/zz-broken.conf'"
    pb deploy-nginx-broken deploy.yml --limit netops-02 -e nginx_netops_server_name=broken.example
    check "the deploy fails (exit 2) at nginx's one validation" \
        test "$RC$(task_status 'nginx : Validate the configuration' netops-02)" = 2fatal
    check "nginx was not reloaded with it" bash -c "! grep -q '^RUNNING HANDLER \[nginx : Reload nginx\]' '$LAST_LOG'"
    check "nginx still serves netops on netops-02 (to the allowed scraper, this machine)" \
        python3 -c "import urllib.request; urllib.request.urlopen('http://${IP[netops-02]}:9180/', timeout=5)"
    on netops-02 rm -f /etc/nginx/conf.d/zz-broken.conf
    pb deploy-nginx-fixed deploy.yml --limit netops-02
    shown; check "fixed: the deploy passes, nginx -t ran once, then the reload" \
        bash -c "[ $RC -eq 0 ] && [ \$(grep -cE '^(TASK|RUNNING HANDLER) \[nginx : Validate' '$LAST_LOG') -eq 1 ] &&
                 grep -A1 '^RUNNING HANDLER \[nginx : Reload nginx\]' '$LAST_LOG' | grep -q '^changed: \[netops-02\]'"

    say "7. PostgreSQL stopped on netops-01: status names it, --check sees it, deploy repairs it"
    on netops-01 systemctl stop postgresql@15-main
    pb status-pg-down status.yml
    check "status.yml exits 2 with a host critical" test "$RC" -eq 2
    check "status.yml: netops-01 critical, its problem named" grep -qE '^\s*netops-01 +critical +database_down' "$LAST_LOG"
    check "the box's hint names its own server, not the embedded one (netops db up)" \
        bash -c "ssh ${SSH_OPTS[*]} deploy@${IP[netops-01]} sudo runuser -u netops -- /opt/netops/venv/bin/netops \
                 --config /etc/netops/netops.toml status --json | grep -q 'PostgreSQL is not reachable' &&
                 ! ssh ${SSH_OPTS[*]} deploy@${IP[netops-01]} sudo runuser -u netops -- /opt/netops/venv/bin/netops \
                 --config /etc/netops/netops.toml status --json | grep -q 'netops db up'"
    pb check-pg-down deploy.yml --check --limit netops-01
    shown; check "--check exits 0" test "$RC" -eq 0
    check "--check reports the start of the stopped cluster as changed" \
        test "$(task_status 'postgresql : Bring the cluster to the wanted state' netops-01)" = changed
    check "--check did not start it" bash -c "! ssh ${SSH_OPTS[*]} deploy@${IP[netops-01]} pg_lsclusters -h | grep -q online"
    pb repair deploy.yml --limit netops-01
    shown; check "deploy repairs it: exits 0, the start task changed" \
        test "$RC$(task_status 'postgresql : Bring the cluster to the wanted state' netops-01)" = 0changed
    check "the cluster runs again" bash -c "ssh ${SSH_OPTS[*]} deploy@${IP[netops-01]} pg_lsclusters -h | grep -q online"

    say "8. reboot the systemd hosts: they come back healthy"
    P restart -t 20 fleet-netops-01 fleet-netops-02 >/dev/null
    wait_ssh netops-01 netops-02
    sleep 5
    pb status-after-reboot status.yml --limit netops-01,netops-02,localhost
    shown
    check "after a reboot netops-01 and netops-02 are ok" \
        bash -c "[ $RC -eq 0 ] && grep -qE '^\s*netops-01 +ok ' '$LAST_LOG' && grep -qE '^\s*netops-02 +ok ' '$LAST_LOG'"

    say "9. restart the host without an init: critical until its services are started (docs/deploy.md)"
    P restart -t 5 fleet-netops-03 >/dev/null
    wait_ssh netops-03
    pb status-noinit-restarted status.yml
    check "status.yml: netops-03 critical after its restart (exit 2)" \
        bash -c "[ $RC -eq 2 ] && grep -qE '^\s*netops-03 +critical +database_down' '$LAST_LOG'"
    pb deploy-noinit deploy.yml --limit netops-03
    shown; check "deploy.yml starts netops-03's services again" test "$RC" -eq 0
    pb status-noinit-back status.yml
    shown; check "status.yml: every host ok again" \
        bash -c "[ $RC -eq 0 ] && grep -qE '^\s*netops-03 +ok ' '$LAST_LOG'"

    say "10. an unreachable host"
    P stop -t 5 fleet-netops-03 >/dev/null
    pb status-unreachable status.yml
    check "status.yml exits 2 (docs/deploy.md) with a host unreachable" test "$RC" -eq 2
    check "the table shows netops-03 unreachable, the reason under problems, no firing alert" \
        grep -qE '^\s*netops-03 +unreachable +.*(ssh|connect|host).* +- +- +- +-\s*$' "$LAST_LOG"

}

# --- helpers of steps 11-13 -----------------------------------------------------------------
SIM_URL="http://$GW:$SIM_PORT"
not() { ! "$@"; }
# a script run as root on a host, read from stdin (no quoting through ssh); arguments are $1...
on_sh() { local h="$1"; shift; ssh "${SSH_OPTS[@]}" "deploy@${IP[$h]}" sudo bash -s -- "$@"; }
# SQL from stdin, as postgres in the netops database, unaligned rows (col|col)
psql_on() { ssh "${SSH_OPTS[@]}" "deploy@${IP[$1]}" sudo runuser -u postgres -- psql -X -A -t -q -d netops -v ON_ERROR_STOP=1; }
sql_on() { psql_on "$1" <<<"$2"; }
# a netops command as the netops user with the box's config, as an admin types it
netops_on() { local h="$1"; shift; ssh "${SSH_OPTS[@]}" "deploy@${IP[$h]}" sudo runuser -u netops -- /opt/netops/venv/bin/netops --config /etc/netops/netops.toml "$@"; }
# a host made again has a new host key: forget the old one (and any SSH master connection to it)
forget_host() {
    ssh -o ControlPath="$RUN/cm-%C" -O exit "deploy@${IP[$1]}" >/dev/null 2>&1 || true
    ssh-keygen -q -R "${IP[$1]}" -f "$RUN/known_hosts" >/dev/null 2>&1 || true
}
# run_job HOST NAME [raw]: run that job of /etc/cron.d/netops as cron runs it (its user, environment,
# lock and log), waiting for the lock rather than skipping when cron's own run holds it, without
# the job's start delay. raw: the job's command alone, its output on stdout (on a full disk nothing
# reaches cron_output.log). A loop job (`alerts check --loop`) runs one cycle. Exit 97: no such job.
run_job() {
    on_sh "$1" "$2" "${3:-cron}" <<'SH'
line=$(grep -E "^[^#A-Z].* flock -n [^ ]+/$1\.lock " /etc/cron.d/netops | sed -E 's/^([^ ]+ +){5}netops +//')
[ -n "$line" ] || { echo "no job $1 in /etc/cron.d/netops"; exit 97; }
# a loop job holds its lock for good: one cycle of it runs beside it, without the lock
case "$line" in *" --loop"*) line=$(printf '%s' "$line" | sed -E 's/ --loop( --interval [0-9]+)?//; s/^flock -n [^ ]+ //') ;; esac
if [ "$2" = raw ]; then
    line=$(printf '%s' "$line" | sed -E "s/^(flock -n [^ ]+ )?sh -c '(sleep [0-9]+; )?(.*)' >> [^ ]+ 2>&1\$/\3/")
else
    line=$(printf '%s' "$line" | sed -E "s/^flock -n /flock -w 300 /; s/ sh -c 'sleep [0-9]+; / sh -c '/")
fi
cd /
runuser -u netops -- env -i HOME=/var/lib/netops LANG=C.UTF-8 SHELL=/bin/sh PATH=/opt/netops/venv/bin:/usr/bin:/bin \
    NETOPS_CONFIG=/etc/netops/netops.toml timeout 300 sh -c "$line" </dev/null
SH
}
# every job of the host every minute (schedule fields only, as cron_proof.yml does; a deploy puts
# the schedule back)
every_minute() {
    on_sh "$1" <<'SH'
sed -i -E 's/^[^#A-Z ][^ ]* +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +(netops|root) /* * * * * \1 /' /etc/cron.d/netops
SH
}
# mirror_check HOST [existing]: the host's mirror holds exactly the simulator's expected rows (count
# and keys) of every table; existing: of the tables the host has (an older release mirrors fewer)
mirror_check() {
    if [ "${2:-}" = existing ]; then
        local only; only="$(sql_on "$1" "SELECT string_agg(table_name, ',') FROM information_schema.tables
            WHERE table_schema = 'public'")"
        python3 "$here/mirror.py" sql "$SIM_URL" "$only" | psql_on "$1" >"$RUN/mirror-$1.txt" &&
            python3 "$here/mirror.py" compare "$SIM_URL" "$RUN/mirror-$1.txt" "$only"
        return
    fi
    [ -s "$RUN/mirror.sql" ] || python3 "$here/mirror.py" sql "$SIM_URL" >"$RUN/mirror.sql"
    psql_on "$1" <"$RUN/mirror.sql" >"$RUN/mirror-$1.txt" && python3 "$here/mirror.py" compare "$SIM_URL" "$RUN/mirror-$1.txt"
}
filled() { mirror_check "$1" "${2:-}" && queue_idle "$1"; }
queue_idle() { test "$(sql_on "$1" "SELECT count(*) FROM netops.backlog_items WHERE state IN ('pending', 'processing')")" = 0; }
backup_dir_of() {
    netops_on "$1" config show --json | python3 -c 'import json, sys
s = json.load(sys.stdin)["settings"]
print(s["backup_dir"]["value"] or s["state_dir"]["value"].rstrip("/") + "/backups")'
}
first_line() { printf '%s\n' "$1" | grep -m1 . | cut -c1-160; }

step_upgrade() {
    local h=netops-03 t0=$SECONDS prev name
    say "11. upgrade: $h gets the previous release, cron fills it, then this checkout is deployed over it"
    prev="$(git -C "$repo" rev-parse -q --verify 'v0.1.0^{commit}' || git -C "$repo" rev-parse -q --verify 'e3009a3^{commit}' || true)"
    if [ -z "$prev" ]; then
        fail "the previous release: neither tag v0.1.0 nor commit e3009a3 is in $repo (a shallow clone? git fetch --tags --unshallow): no upgrade tried"
        return 0
    fi
    name="$(git -C "$repo" describe --tags --exact-match "$prev" 2>/dev/null || echo "${prev:0:7}")"
    mkdir -p "$RUN/prev"
    git -C "$repo" archive "$prev" | tar -C "$RUN/prev" -xf -
    # a new box (systemd) in the place of netops-03, which step 10 stopped
    P rm -f -t 0 "fleet-$h" >/dev/null
    KIND[$h]=systemd
    start_host "$h"
    forget_host "$h"
    wait_ssh "$h"
    # the previous release's own playbooks, roles and package, with this inventory
    PB_ROOT="$RUN/prev" PB_SRC="$RUN/prev" pb deploy-previous deploy.yml --limit "$h"
    shown; check "the previous release ($name) deploys on a new $h" test "$RC" -eq 0
    every_minute "$h"
    local i
    for i in $(seq 36); do
        filled "$h" existing >/dev/null 2>&1 && break
        sleep 5
    done
    check "cron synced and filled the backlog: every table $name has holds the simulator's rows (counts, keys), queue idle" \
        filled "$h" existing
    # the queries are made from the old release's schema, and the same ones are run before and after
    psql_on "$h" <"$here/upgrade_snapshot.sql" >"$RUN/upgrade-queries.sql"
    psql_on "$h" <"$RUN/upgrade-queries.sql" >"$RUN/upgrade-before.txt"
    echo "     $(wc -l <"$RUN/upgrade-before.txt") tables and promises, e.g. $(grep -m1 '^users|' "$RUN/upgrade-before.txt")"
    local schema_before; schema_before="$(sql_on "$h" "SELECT max(version) FROM netops.schema_migrations")"
    # the deploy runs while cron runs every job every minute
    pb deploy-upgrade deploy.yml --limit "$h"
    shown; check "deploying this checkout over $name exits 0 (cron running every job every minute)" test "$RC" -eq 0
    psql_on "$h" <"$RUN/upgrade-queries.sql" >"$RUN/upgrade-after.txt"
    echo "     migrations the upgrade applied: $(sql_on "$h" "SELECT coalesce(string_agg(version::text, ', ' ORDER BY version), 'none')
        FROM netops.schema_migrations WHERE version > '$schema_before'")"
    check "every row count and checksum of $name's tables as before; queue, sync history, cursors, alerts kept" \
        diff "$RUN/upgrade-before.txt" "$RUN/upgrade-after.txt"
    check "netops db migrate --dry-run: no migration pending" \
        test "$(netops_on "$h" db migrate --dry-run 2>&1)" = "schema is up to date"
    pb cron-proof-upgraded tests/ansible/fleet/cron_proof.yml --limit "$h"
    shown; check "the jobs carry on: cron runs every job on the upgraded $h" test "$RC" -eq 0
    echo "step 11 took $((SECONDS - t0)) s"
}

step_rebuild() {
    local h=netops-01 t0=$SECONDS rc out dump dir file
    say "12. rebuild: $h's backup copied off, the host destroyed, made again, redeployed, restored"
    run_job "$h" backlog; rc=$?
    check "before: $h's backlog job passes (exit $rc)" test "$rc" -eq 0
    check "before: $h's mirror equals the simulator's" mirror_check "$h"
    run_job "$h" backup; rc=$?
    check "the role's backup job runs on $h (exit $rc; 97: the role has no backup job)" test "$rc" -eq 0
    [ "$rc" -eq 97 ] && netops_on "$h" db backup >/dev/null   # so the rest of the step still runs
    dir="$(backup_dir_of "$h")"
    file="$(on "$h" ls -1t "$dir" | grep -m1 .)"
    dump="$RUN/backup-$h-$file"
    ssh "${SSH_OPTS[@]}" "deploy@${IP[$h]}" sudo cat "$dir/$file" >"$dump"
    check "its latest backup ($dir/$file, $(stat -c %s "$dump") bytes) copied off the host intact" \
        test "$(on "$h" sha256sum "$dir/$file" | cut -d' ' -f1)" = "$(sha256sum "$dump" | cut -d' ' -f1)"
    forget_host "$h"
    P rm -f -t 5 "fleet-$h" >/dev/null
    check "$h's container is gone" not P container exists "fleet-$h"

    # the API moves on during the outage: random changes, then a few known ones
    python3 - "$SIM_URL" >"$RUN/churn.txt" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
def call(route, body=None):
    req = urllib.request.Request(f"{url}/_sim/{route}", data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)
n = len(call("churn", {"n": 60})["applied"])
users = [k[0] for k in call("expected/users?values=0")["keys"]]
wallet, gone, new = users[3], users[10], max(users) + 1000
n += len(call("churn", {"changes": [
    {"op": "update", "resource": "users", "id": wallet, "fields": {"wallet": 424242}},
    {"op": "insert", "resource": "users", "id": new, "fields": {"login": "fleetnew"}},
    {"op": "insert", "resource": "coalitions_users", "fields": {"user_id": new}},
    {"op": "delete", "resource": "users", "id": gone}]})["applied"])
print(n, wallet, gone, new)
PY
    local changes wallet gone new
    read -r changes wallet gone new <"$RUN/churn.txt"
    echo "     the API changed $changes rows while $h was away"

    # the new host: same name and address, a new container (new host key), with a small filesystem
    # for its state, logs and web root that step 13 fills
    SMALL="$RUN/small"
    mkdir -p "$SMALL"
    mount -t tmpfs -o size=48m,mode=0755 fleet-small "$SMALL"
    mkdir -p "$SMALL/state" "$SMALL/log" "$SMALL/www"
    start_host "$h" -v "$SMALL/state:/var/lib/netops" -v "$SMALL/log:/var/log/netops" -v "$SMALL/www:/var/www/netops"
    wait_ssh "$h"
    # no first sync: its data comes from the backup (a full pull would spend the API budget for nothing)
    pb deploy-rebuilt deploy.yml --limit "$h" -e '{"netops_first_sync": false}'
    shown; check "the new $h deploys" test "$RC" -eq 0
    dir="$(backup_dir_of "$h")"
    scp -q "${SSH_OPTS[@]}" "$dump" "deploy@${IP[$h]}:/tmp/$file"
    on "$h" install -d -o netops -g netops -m 0750 "$dir"
    on "$h" install -o netops -g netops -m 0600 "/tmp/$file" "$dir/$file"
    on "$h" rm -f "/tmp/$file"
    out="$(netops_on "$h" db restore "$dir/$file" --yes 2>&1)"; rc=$?
    check "netops db restore $dir/$file --yes (exit $rc): $(first_line "$out")" test "$rc" -eq 0
    check "right after the restore the mirror is the backup's: behind the API" not mirror_check "$h"
    run_job "$h" backlog; rc=$?
    check "the backlog job (detect, run) passes on the restored data (exit $rc)" test "$rc" -eq 0
    mirror_check "$h" | sed 's/^/     after detect + run (deletes are reconcile'"'"'s): /'
    # under the backlog job's lock, as the job itself would be: cron's own backlog run is due every 5 minutes
    out="$(ssh "${SSH_OPTS[@]}" "deploy@${IP[$h]}" sudo runuser -u netops -- flock -w 300 /var/lib/netops/locks/backlog.lock \
        /opt/netops/venv/bin/netops --config /etc/netops/netops.toml backlog reconcile 2>&1)"; rc=$?
    check "netops backlog reconcile passes (exit $rc): $(printf '%s\n' "$out" | tail -n 1 | cut -c1-160)" test "$rc" -eq 0
    [ "$rc" -eq 0 ] || printf '%s\n' "$out" | tail -n 20
    check "caught up: every table equals the simulator's (counts and keys)" mirror_check "$h"
    check "the known changes are there: a wallet, a new user and its coalition, a deleted user gone" test \
        "$(sql_on "$h" "SELECT (SELECT wallet FROM users WHERE id = $wallet), (SELECT login FROM users WHERE id = $new),
            (SELECT count(*) FROM coalitions_users WHERE user_id = $new), (SELECT count(*) FROM users WHERE id = $gone)")" \
        = "424242|fleetnew|1|0"
    echo "step 12 took $((SECONDS - t0)) s"
}

# fill HOST PERCENT: fill the small filesystem (root's file under the state dir) until only PERCENT
# of it is free
fill() {
    on_sh "$1" "$2" <<'SH'
read -r size avail < <(df -B1 --output=size,avail /var/lib/netops | tail -n1)
want=$(( size * $1 / 100 ))
if [ "$1" -eq 0 ]; then
    dd if=/dev/zero of=/var/lib/netops/fleet-fill-2 bs=64k 2>/dev/null || true
elif [ "$avail" -gt "$want" ]; then
    fallocate -l $(( avail - want )) /var/lib/netops/fleet-fill-1
fi
df -B1 --output=avail /var/lib/netops | tail -n1 | tr -d ' '
SH
}

step_full_disk() {
    local h=netops-01 t0=$SECONDS rc out job free t_free web=/var/www/netops jobs
    jobs=(token-refresh stable-sync backlog metrics alerts status-json backup)
    say "13. full disk: $h's state, log and web directories share one 48 MB filesystem, filled up"
    free="$(fill "$h" 3)"
    run_job "$h" alerts; rc=$?
    check "3 % free ($free bytes): the alerts job runs (exit $rc, 1: some alert firing) and the disk alert fires" \
        test "$rc|$(sql_on "$h" "SELECT state FROM netops.alert_state WHERE name = 'disk_critical'")" = "1|firing"
    run_job "$h" status-json
    check "the status page's status.json names it" on_sh "$h" "$web/status.json" <<'SH'
python3 -c 'import json, sys
sys.exit("disk_critical" not in json.load(open(sys.argv[1]))["alerts"]["firing"])' "$1"
SH
    free="$(fill "$h" 0)"
    check "the filesystem is full ($free bytes free)" test "$free" -lt 65536
    local backups_before; backups_before="$(on "$h" ls -1 "$(backup_dir_of "$h")" | tr '\n' ' ')"
    for job in "${jobs[@]}"; do
        out="$(run_job "$h" "$job" raw 2>&1)"; rc=$?
        # a job that needs no disk for its work (nothing to queue, a token it need not store) may pass
        check "full disk: $job exits $rc, $(printf '%s\n' "$out" | grep -c .) lines: $(first_line "$out")" \
            bash -c '[ "$1" -eq 0 ] || { [ "$1" -ne 97 ] && [ "$(printf "%s\n" "$2" | grep -c .)" -eq 1 ] &&
                     printf "%s\n" "$2" | grep -qiE "no space|disk.*full|full.*disk|free space|ENOSPC"; }' _ "$rc" "$out"
    done
    # (cron's status-json run may still succeed: a failed job's removed temporary file frees a little)
    check "nothing half-written: status.json is valid JSON" \
        on "$h" python3 -c "'import json, sys; json.load(open(sys.argv[1]))'" "$web/status.json"
    check "nothing half-written: no temporary file left under the web and state dirs" \
        not on "$h" find "$web" /var/lib/netops -name "'.*'" -type f -print -quit "|" grep .
    check "nothing half-written: the backup dir as it was ($backups_before)" \
        test "$(on "$h" ls -1 "$(backup_dir_of "$h")" | tr '\n' ' ')" = "$backups_before"
    t_free="$(on "$h" date +%s)"
    on "$h" rm -f /var/lib/netops/fleet-fill-1 /var/lib/netops/fleet-fill-2
    # nobody runs anything: cron's status-json job (every minute, 40 s in) rewrites status.json
    local i
    for i in $(seq 24); do
        [ "$(on "$h" stat -c %Y "$web/status.json")" -gt "$t_free" ] && break
        sleep 5
    done
    check "space freed: cron rewrites status.json by itself, valid, no disk problem in it" \
        on_sh "$h" "$web/status.json" "$t_free" <<'SH'
[ "$(stat -c %Y "$1")" -gt "$2" ] && python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(any(p["check"].startswith("disk") for p in d["problems"]))' "$1"
SH
    # status-json: cron's own run above; alerts last, after the backup that failed has passed again
    for job in token-refresh stable-sync backlog metrics backup; do
        run_job "$h" "$job"; rc=$?
        check "space freed: the $job job passes again (exit $rc)" test "$rc" -eq 0
    done
    run_job "$h" alerts; rc=$?
    local disk_alert; disk_alert="$(sql_on "$h" "SELECT state FROM netops.alert_state WHERE name = 'disk_critical'")"
    check "the alerts job runs (exit $rc) and the disk alert is $disk_alert (firing now: $(sql_on "$h" "SELECT
        coalesce(string_agg(name, ', '), 'none') FROM netops.alert_state WHERE state = 'firing'"))" \
        test "$([ "$rc" -le 1 ] && [ "$disk_alert" != firing ] && echo yes)" = yes
    echo "step 13 took $((SECONDS - t0)) s"
}

# on the controller: the webhook receiver both paths POST to, and Prometheus + Alertmanager
# scraping the host's nginx (latency.py serve)
LAT_PORT=8743
latency() { "$repo/.venv/bin/python" "$here/latency.py" "$@"; }
# pg_at_random HOST stop|start: after 0-29 s (a random point of the loop's and cron's cycles), stop or
# start HOST's cluster; prints when (the host's clock, epoch seconds)
pg_at_random() {
    sleep $((RANDOM % 30))
    local ev; ev="$(on "$1" date +%s.%N)"
    on "$1" systemctl "$2" postgresql@15-main >/dev/null
    echo "$ev"
}
# seconds_within VALUE MAX: VALUE is a number (latency.py wait printed one) no larger than MAX
seconds_within() { awk -v n="$1" -v max="$2" 'BEGIN { exit !(n + 0 == n && n <= max) }'; }
loop_pid() { on_sh "$1" <<<"pgrep -u netops -f -o '/bin/netops alerts check --loop' || true"; }

step_latency() {
    local h=netops-02 t0=$SECONDS dir="$RUN/latency" i ev n am r old new trials="" resolves=""
    say "14. event to notification on $h, on the deployed schedule: netops' alert loop, and Prometheus + Alertmanager"
    mkdir -p "$dir"
    # python itself in the background (not a function's subshell), so cleanup's kill reaches it
    "$repo/.venv/bin/python" "$here/latency.py" serve "$dir" "$GW" "$LAT_PORT" "${IP[$h]}:9180" >"$dir/serve.log" 2>&1 &
    SERVER_PIDS="$SERVER_PIDS $!"
    for i in $(seq 120); do [ -e "$dir/ready" ] && break; sleep 1; done
    if [ ! -e "$dir/ready" ]; then
        fail "Prometheus and Alertmanager on the controller, scraping $h's /metrics: not ready in 120 s"
        tail -n 20 "$dir/serve.log"
        return 0
    fi
    ok "Prometheus (15 s scrapes) and Alertmanager (the role's example) on the controller scrape $h's /metrics"
    old="$(loop_pid "$h")"
    pb deploy-webhook deploy.yml --limit "$h" -e "{\"netops_extra_settings\": {\"alert_webhook_url\": \"http://$GW:$LAT_PORT/netops\"}}"
    shown; check "a deploy sets $h's webhook URL (exit $RC)" test "$RC" -eq 0
    # the loop sees its config file change at its next check (<= 30 s), exits, and cron starts it
    # again at the next minute (<= 60 s)
    for i in $(seq 150); do
        new="$(loop_pid "$h")"
        [ -n "$new" ] && [ "$new" != "$old" ] && break
        sleep 1
    done
    check "the alert loop restarted on the new config by itself (pid ${old:-none} -> ${new:-none}, ${i} s)" \
        test -n "$new" -a "$new" != "$old"
    # three outages of $h's PostgreSQL, each begun and ended at a random point of the loop's and cron's cycles;
    # the first is held until Alertmanager's POST too (for: 1m, then a scrape, then group_wait)
    for i in 1 2 3; do
        ev="$(pg_at_random "$h" stop)"
        n="$(latency wait "$dir" /netops database_down firing "$ev" 120)"
        check "outage $i: netops' loop POSTs database_down firing ${n} s after PostgreSQL stopped (target <= 60 s)" \
            seconds_within "$n" 60
        trials="$trials${trials:+, }$n"
        if [ "$i" = 1 ]; then
            am="$(latency wait "$dir" /am NetopsDatabaseDown firing "$ev" 420)"
            check "outage 1: Alertmanager POSTs NetopsDatabaseDown firing ${am} s after" seconds_within "$am" 420
        fi
        ev="$(pg_at_random "$h" start)"   # not in step with the loop's check that just posted
        r="$(latency wait "$dir" /netops database_down resolved "$ev" 120)"
        check "outage $i: netops' loop POSTs database_down resolved ${r} s after PostgreSQL started" \
            seconds_within "$r" 60
        resolves="$resolves${resolves:+, }$r"
    done
    echo "     event to POST on $h: netops' loop firing $trials s, resolved $resolves s; Prometheus + Alertmanager firing ${am} s"
    printf '{"host": "%s", "netops_firing_s": [%s], "netops_resolved_s": [%s], "alertmanager_firing_s": %s}\n' \
        "$h" "$trials" "$resolves" "$(awk -v n="$am" 'BEGIN { print (n + 0 == n) ? n : "null" }')" | tee "$dir/results.json"
    echo "step 14 took $((SECONDS - t0)) s"
}

# one line: bash has parsed all of it before main runs, so editing this file mid-run is harmless
main "$@"; exit $?
