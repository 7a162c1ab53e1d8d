# Developer shortcuts. The README's two commands (scripts/demo.sh, scripts/test.sh) stay the way in.
#
#   make bench                       every benchmark, rewrites BENCHMARKS.md (~10 min)
#   make bench ONLY=loader           one benchmark (sync, loader, backlog, dlt, status, real,
#                                    budget, keys, claim, monitor, campus)
#   make bench ONLY=sync,dlt RUNS=5  several, with more runs per median
#   make db-shell                    psql on the configured database (netops db shell)

PYTHON ?= python3
VENV   ?= .venv
ONLY   ?=
RUNS   ?= 3
NETOPS ?= $(if $(wildcard $(VENV)/bin/netops),$(VENV)/bin/netops,netops)

.PHONY: bench bench-compare bench-deps db-shell

# The same benchmarks run first by an earlier commit (its own checkout in a scratch worktree, its
# own bench code and simulator), then by this checkout; BENCHMARKS.md shows both headlines.
#   make bench-compare REV=v0.1.0 ONLY=sync,status RUNS=1
REV ?=
bench-compare: bench-deps
	@[ -n "$(REV)" ] || { echo "error: name the earlier commit: make bench-compare REV=<commit>"; exit 2; }
	rm -rf .bench-base && git worktree add --force --detach .bench-base $(REV)
	$(MAKE) -C .bench-base bench-deps PYTHON=$(PYTHON)
	cd .bench-base && .venv/bin/python -m bench.run --runs $(RUNS) $(if $(ONLY),--only $(ONLY)) \
		--out /dev/null --results $(CURDIR)/.bench-base.json
	$(VENV)/bin/python -m bench.run --runs $(RUNS) $(if $(ONLY),--only $(ONLY)) \
		--baseline $(CURDIR)/.bench-base.json --baseline-label "$(REV) ($$(git rev-parse --short $(REV)))"
	git worktree remove --force .bench-base && rm -f .bench-base.json

bench: bench-deps
	$(VENV)/bin/python -m bench.run --runs $(RUNS) $(if $(ONLY),--only $(ONLY))

# netops itself plus the bench-only extra (dlt, for the comparison); never a runtime dependency
bench-deps:
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[bench]' >$(VENV)/bench-install.log 2>&1 \
		|| { cat $(VENV)/bench-install.log; exit 1; }

db-shell:
	$(NETOPS) db shell
