# zero_sudo: the two commands a newcomer needs are `make run` and `make test` (see README).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: run test lint browser test-daemons test-odoo services venv bench-relay bench-drivers bench-ingest bench-gateway bench-export bench-cache fuzz-landing bench-live bench-failover

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "venv: $(PYTHON) cannot create virtual environments; installing python3-venv"; \
	  apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); } \
	  || { echo "venv: cannot create $(VENV): install python3-venv (apt-get install python3-venv)"; exit 1; }
	$(PY) -m pip install -q --disable-pip-version-check -e ".[daemons,test,bench,odoo]"
	touch $@

services:
	bash scripts/ensure_services.sh

browser:
	bash scripts/ensure_browser.sh

## The product on one URL (http://localhost:8080): Odoo with the suite and demo data when Odoo is
## found, the daemons and nginx; without Odoo, the daemons alone (README, first section).
## `exec`: make waits on the runner itself, which stops everything on one Ctrl-C.
run: venv services
	exec $(PY) -m zero_sudo_daemons.stack

## The whole test suite: lint, the Odoo suites when Odoo is found, then daemons and library.
test: venv services browser lint
	bash scripts/odoo_tests.sh
	$(PY) -m pytest tests/

lint: venv
	$(VENV)/bin/ruff check shared daemons tests benchmarks addons
	$(VENV)/bin/ruff format --check shared daemons tests benchmarks addons

test-daemons: venv services
	$(PY) -m pytest tests/

test-odoo: venv services
	bash scripts/odoo_tests.sh

bench-relay: venv services
	$(PY) benchmarks/bench_relay.py

bench-drivers: venv services
	$(PY) benchmarks/bench_pg_listen_drivers.py

bench-ingest: venv services
	$(PY) benchmarks/bench_ingest.py

## 100 000 hostile and valid messages, two SIGKILLs: nothing lost, the daemon never exits by itself.
fuzz-landing: venv services
	PYTHONPATH=tests $(PY) benchmarks/fuzz_landing.py

bench-gateway: venv services
	$(PY) benchmarks/bench_gateway.py

bench-export: venv services
	bash scripts/odoo_bench.sh export benchmarks/bench_export.py

bench-cache: venv services
	bash scripts/odoo_bench.sh cache benchmarks/bench_cache.py

bench-live: venv services
	$(PY) benchmarks/bench_live.py

bench-failover: venv services
	PYTHONPATH=tests $(PY) benchmarks/bench_failover.py
