# Developer shortcuts. The README's two commands (scripts/demo.sh, scripts/test.sh) stay the way in.
#
#   make bench                       every benchmark, rewrites BENCHMARKS.md (~10 min)
#   make bench ONLY=loader           one benchmark (sync, loader, backlog, dlt, status, real,
#                                    budget, keys, claim, monitor)
#   make bench ONLY=sync,dlt RUNS=5  several, with more runs per median
#   make db-shell                    psql on the configured database (netops db shell)

PYTHON ?= python3
VENV   ?= .venv
ONLY   ?=
RUNS   ?= 3
NETOPS ?= $(if $(wildcard $(VENV)/bin/netops),$(VENV)/bin/netops,netops)

.PHONY: bench bench-deps db-shell

bench: bench-deps
	$(VENV)/bin/python -m bench.run --runs $(RUNS) $(if $(ONLY),--only $(ONLY))

# netops itself plus the bench-only extra (dlt, for the comparison); never a runtime dependency
bench-deps:
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[bench]' >$(VENV)/bench-install.log 2>&1 \
		|| { cat $(VENV)/bench-install.log; exit 1; }

db-shell:
	$(NETOPS) db shell
