# seam: the two commands of the README's quick start, and a few helpers.
SHELL  := /bin/bash
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
DATE   ?= 2026-11-22
UV_VERSION := 0.13.9

.PHONY: demo test test-fast install lint typecheck services clean

$(BIN)/seam: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]'
	@touch $@

install: $(BIN)/seam  ## create .venv and install the pinned dependencies

data/demo/erp.db:
	$(BIN)/seam generate --erp-url sqlite:///data/demo/erp.db --crm-url sqlite:///data/demo/crm.db

demo: install data/demo/erp.db  ## build the SQLite demo and run the nightly DAG through Airflow
	@. scripts/airflow-env.sh && mkdir -p "$$AIRFLOW_HOME" && $(BIN)/airflow db migrate >/dev/null
	@. scripts/airflow-env.sh && $(BIN)/python scripts/run_dag.py --date $(DATE)

test: install  ## run the whole test suite (on every core; the Airflow deployments first)
	$(BIN)/python -m pytest -n auto --dist worksteal

test-fast: install  ## the unit and DAG-integrity tests only: no server, no pipeline run
	$(BIN)/python -m pytest -n auto --dist worksteal -m "not server and not integration and not e2e"

lint: install
	$(BIN)/ruff check pipelines dags tests benchmarks scripts
	$(BIN)/ruff format --check pipelines dags tests benchmarks scripts

typecheck: install
	$(BIN)/mypy

services:  ## install and start PostgreSQL, MariaDB and Redis for the integration tests
	scripts/services.sh

clean:
	rm -rf data .airflow
