# price_pipeline: `make run` brings up the demo platform, `make test` runs the whole suite.
# Both create the virtualenv and install everything on first use (Python 3.11+ and make only).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: run test install manifest lint format bench clean

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) nothing is
# ever cached, and every run worker, code server and CLI call would recompile dagster, pandas
# and pyarrow from source: ~3.5 CPU-s per process start.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## dbt's manifest.json must exist before Dagster can load the dbt assets.
manifest: $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@ln -sf ../dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	cd dbt_analytics && ../$(BIN)/dbt parse --quiet --project-dir . --profiles-dir .

## Start the demo catalog on 127.0.0.1:8765 and the Dagster UI on http://127.0.0.1:3000.
run: manifest
	$(BIN)/python -m price_pipeline.launch

## Everything: unit, integration, dbt, end-to-end and production-mode tests.
test: manifest
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/run_one_hospital.py

clean:
	rm -rf .data .dagster_home/storage .dagster_home/history .dagster_home/logs .dagster_home/schedules \
		dbt_analytics/target dbt_analytics/logs
