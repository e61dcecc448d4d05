# dsx-connect developer entry points. Setup is two commands:
#   make up     the whole local stack on this machine, then a full scan of a sample folder
#   make test   the whole test suite
# Both install what they need first (scripts/ensure-deps.sh): `make up` the virtualenv, the project and
# redis-server; `make test` also the test-only peers (scripts/deps/apt-packages.txt as root, the npm tools)
# and, when python3.12 exists, a second virtualenv .venv312 in which the unit tests run again.
# Knobs: VENV (.venv), PYTHON (python3, creates the venv), VENV312 (.venv312), PYTEST_ARGS, BENCH_ARGS (make bench),
# CONNECTOR (what `make up` runs:
# filesystem, aws_s3, azure_blob_storage, google_cloud_storage, sharepoint or onedrive, each cloud one on its emulator
# or the fake Graph), and the DSX_* variables of
# the devstack package (`python -m devstack --help`: DSX_RUN_DIR, DSX_REDIS_PORT, DSX_DSXA_PORT, DSX_CORE_PORT, DSX_FS_PORT, ...).

SHELL := bash
VENV ?= .venv
VENV312 ?= .venv312
PY := $(VENV)/bin/python
BENCH_ARGS ?=
PYTEST_ARGS ?=
CONNECTOR ?= $(or $(DSX_CONNECTOR),filesystem)
export VENV VENV312

.DEFAULT_GOAL := help
.PHONY: help deps venv up down status bench test test-unit test-unit-312 test-cov lint format type-check

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

deps: ## what `make test` needs: virtualenv + pip install -e '.[dev,test,cloud]', redis-server, test peers (apt, npm), .venv312
	@bash scripts/ensure-deps.sh test

venv: ## virtualenv and project only
	@bash scripts/ensure-deps.sh python

up: ## start redis, dsxa_lite, core API, workers and a connector (CONNECTOR=filesystem|aws_s3|azure_blob_storage|google_cloud_storage|sharepoint|onedrive); full-scan its sample
	@DSX_CONNECTOR="$(CONNECTOR)" bash scripts/stack-up.sh

down: ## stop what `make up` started (and nothing else)
	@bash scripts/stack-down.sh

status: ## health of each component of the running stack
	@bash scripts/stack-status.sh

bench: deps ## the throughput benchmark (scripts/bench.py $(BENCH_ARGS)); installs wrk first (ensure-deps.sh bench)
	@bash scripts/ensure-deps.sh bench
	$(PY) scripts/bench.py $(BENCH_ARGS)

test: deps ## the whole suite (unit, integration, e2e), then the unit tests on Python 3.12 when it exists
	$(PY) -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-unit-312

test-unit-312: ## the unit tests on Python 3.12 (.venv312, made by `make deps` when python3.12 exists)
	@if [ -x $(VENV312)/bin/python ]; then $(VENV312)/bin/python -m pytest -m unit -q -p no:cacheprovider $(PYTEST_ARGS); \
	else echo "no $(VENV312): the unit tests ran on $$($(PY) --version) only (install python3.12, then make deps)"; fi

test-unit: venv ## fast tests (marker unit)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-cov: deps ## the whole suite with a coverage report (installs pytest-cov if missing)
	@$(PY) -c 'import pytest_cov' 2>/dev/null || $(PY) -m pip install --disable-pip-version-check -q pytest-cov
	$(PY) -m pytest --cov=dsx_connect --cov=dsxa_lite --cov=connectors --cov=shared --cov-report=term-missing $(PYTEST_ARGS)

lint: venv ## ruff check
	$(PY) -m ruff check .

format: venv ## ruff format
	$(PY) -m ruff format .

type-check: venv ## mypy
	$(PY) -m mypy
