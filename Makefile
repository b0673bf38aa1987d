# The two commands: `make demo` (set-up + the daily pipeline on the embedded warehouse) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DAYS ?= 14
CUSTOMERS ?= 5000
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: demo test lint venv browser postgres15 superset-venv superset warehouse-start warehouse-stop docs clean

venv: $(VENV)/.installed

# Install from the lock with uv when it can be had, else with pip. Bytecode is compiled at install
# time: with PYTHONDONTWRITEBYTECODE set (as on CI here) every import would otherwise recompile,
# and Airflow + dbt + GX imports cost ~3x longer.
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if $(BIN)/python -m pip install -q --disable-pip-version-check uv >/dev/null 2>&1; then \
	  $(BIN)/python -m uv pip install -q --python $(BIN)/python --compile-bytecode -r requirements.lock && \
	  $(BIN)/python -m uv pip install -q --python $(BIN)/python --no-deps -e . ; \
	else \
	  $(BIN)/python -m pip install -q -r requirements.lock && $(BIN)/python -m pip install -q --no-deps -e . ; \
	fi
	@touch $@

demo: venv
	$(BIN)/ecrm demo --days $(DAYS) --customers $(CUSTOMERS)

# sqlfluff's dbt templater needs a live database, so it runs inside pytest (tests/test_dbt_lint.py)
# against the test session's own PostgreSQL.
lint: venv
	$(BIN)/ruff check src dags tests benchmarks

# The report's browser test (tests/test_report.py) opens index.html in Debian's Chromium, driven by
# playwright without a browser download: installed here when missing and run as root, else a clear stop.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the report's browser test (apt-get install -y chromium)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The report's browser test needs Chromium at $(CHROMIUM): run 'sudo apt-get install -y chromium'" >&2; \
	    exit 1; \
	  fi; }

# tests/test_postgres15.py runs the day on Debian's PostgreSQL 15 (the embedded warehouse is 16): the
# binaries are installed here when missing and run as root, with no side effect on the machine -- no
# cluster created (create_main_cluster = false when we install postgresql-common ourselves, as the
# official postgres image does) and no service started (policy-rc.d answers 101 during the install).
PG15_BIN ?= /usr/lib/postgresql/15/bin
postgres15:
	@test -x $(PG15_BIN)/postgres || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing PostgreSQL 15 for tests/test_postgres15.py (apt-get install -y postgresql-15; no cluster, no service)"; \
	    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq || exit 1; \
	    guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; \
	      chmod 755 /usr/sbin/policy-rc.d; guard=1; fi; \
	    dpkg -s postgresql-common >/dev/null 2>&1 || { apt-get install -y -qq postgresql-common >/dev/null && \
	      sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
	        /etc/postgresql-common/createcluster.conf; }; \
	    apt-get install -y -qq postgresql-15 >/dev/null; rc=$$?; \
	    if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	    test $$rc = 0 && test -x $(PG15_BIN)/postgres; \
	  else \
	    echo "tests/test_postgres15.py needs PostgreSQL 15 at $(PG15_BIN): run 'sudo apt-get install -y postgresql-15'" >&2; \
	    exit 1; \
	  fi; }

# Superset 6.1 in its own virtual environment (its pins clash with Airflow's), from bi/superset/requirements.txt:
# tests/test_bi.py's end-to-end test deploys the dashboards to it. Skipped when the requirements did not change.
superset-venv: venv
	$(BIN)/ecrm bi install

# The dashboards (bi/superset): install, initialise and start Superset when nothing answers at ECRM_SUPERSET_URL
# (default http://localhost:8088), then import the bundle. Needs ECRM_BI_READER_URL, ECRM_SUPERSET_ADMIN_PASSWORD
# and SUPERSET_SECRET_KEY in the environment (docs/bi.md); `ecrm bi login` creates the BI login.
superset: venv
	$(BIN)/ecrm bi deploy

# Two workers (TEST_WORKERS), a whole test file per worker at a time (module fixtures are built once):
# a serial run left one of the 2 cores idle half of the time. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: venv lint browser postgres15 superset-venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

# dbt docs + Great Expectations Data Docs, served at http://127.0.0.1:8080/
docs: venv
	$(BIN)/ecrm docs

warehouse-start: venv
	$(BIN)/ecrm warehouse start

warehouse-stop: venv
	$(BIN)/ecrm warehouse stop

clean:
	-$(BIN)/ecrm warehouse stop
	-$(BIN)/ecrm bi stop 2>/dev/null
	rm -rf .ecrm .airflow .superset data dbt_project/target dbt_project/logs
