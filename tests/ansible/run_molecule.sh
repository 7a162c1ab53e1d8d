#!/usr/bin/env bash
# Run the Ansible bundle's checks: ansible-lint (production profile), syntax checks, and the
# molecule scenario against this machine (no container engine; needs root and apt).
#   tests/ansible/run_molecule.sh            # lint + syntax + `molecule test`
#   tests/ansible/run_molecule.sh lint       # lint + syntax only
#   tests/ansible/run_molecule.sh converge   # (or verify, cleanup, idempotence...) one molecule step
# Uses the repository's .venv when there is one (pip install -e '.[deploy]').
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
if [ -x "$repo/.venv/bin/ansible-playbook" ]; then
    export PATH="$repo/.venv/bin:$PATH"
fi
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1 ANSIBLE_NOCOLOR=1
step="${1:-test}"

lint() {
    cd "$repo"
    echo "== ansible-lint (production profile)"
    ansible-lint --profile production --offline
    echo "== ansible-playbook --syntax-check"
    for pb in deploy.yml status.yml playbooks/deploy.yml playbooks/status.yml tests/ansible/molecule/*/*.yml; do
        [ "$(basename "$pb")" = molecule.yml ] && continue
        ANSIBLE_CONFIG="$repo/ansible.cfg" ansible-playbook --syntax-check "$pb"
    done
}

case "$step" in
    lint)
        lint
        ;;
    test)
        lint
        # build from a snapshot of the package sources taken now (see molecule.yml)
        snap="$(mktemp -d /tmp/netops-molecule-src.XXXXXX)"
        trap 'rm -rf "$snap"' EXIT
        (cd "$repo" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml $(ls README.md 2>/dev/null) netops) \
            | tar -C "$snap" -xf -
        export NETOPS_MOLECULE_SOURCE_DIR="$snap"
        cd "$here"
        echo "== molecule test"
        # a per-run throwaway secret for the simulator and the DB role
        MOLECULE_RUN_TOKEN="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" molecule test
        # cleanup must have stopped what converge started
        if left="$(ss -ltnH 2>/dev/null | grep -E '127\.0\.0\.1:(5432|18080|18042) ')"; then
            echo "error: cleanup left services listening:"; echo "$left"; exit 1
        fi
        echo "molecule: all steps passed, services stopped"
        ;;
    *)
        cd "$here"
        MOLECULE_RUN_TOKEN="${MOLECULE_RUN_TOKEN:-local}" molecule "$step"
        ;;
esac
