# price_pipeline: `make run` brings up the demo platform, `make test` runs the whole suite.
# Both create the virtualenv and install everything on first use (Python 3.11+ and make only).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home

# The installer's version is pinned so that uv.lock's format (and its resolution rules) only
# change when this line does (deploy/Dockerfile pins the same version). uv lives in its own small virtualenv (.uv/): `uv sync` makes .venv
# hold exactly what uv.lock lists, so an installer inside .venv would remove itself.
UV_VERSION := 0.13.9
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
# Never fetch a Python build: use the interpreter $(PYTHON) names (3.11+).
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test install bytecode manifest lint format bench clean lock fuzz rehearsal demo-fingerprint

$(UV_HOME)/.uv-$(UV_VERSION):
	@rm -rf $(UV_HOME)
	$(PYTHON) -m venv $(UV_HOME)
	@$(UV_HOME)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@touch $@

# `uv sync --locked` installs exactly the versions in uv.lock, and fails (instead of resolving
# anew) when pyproject.toml and uv.lock disagree: run `make lock` after changing dependencies.
# The project itself is installed editable (uv's default for a project with a build system).
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) nothing is
# ever cached, and every run worker, code server and CLI call would recompile dagster, pandas
# and pyarrow from source: ~3.5 CPU-s per process start.
$(STAMP): pyproject.toml uv.lock $(UV_HOME)/.uv-$(UV_VERSION)
	$(UV) sync --quiet --locked --extra dev --compile-bytecode --python $(PYTHON) \
		|| { echo "uv sync failed; if pyproject.toml changed, update the lock on purpose: make lock (README)" >&2; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

## The project's own bytecode. uv's --compile-bytecode covers site-packages, not the editable
## price_pipeline/ (~100 modules): where PYTHONDONTWRITEBYTECODE is set, every run worker would
## compile them from source (~0.1 CPU-s per process, benchmarks/README.md "Start-up"). A module
## edited later is compiled in memory as before; compileall skips what is up to date.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q price_pipeline

## dbt's manifest.json must exist before Dagster can load the dbt assets.
manifest: $(STAMP) bytecode
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

## Re-resolve uv.lock after editing pyproject.toml (keeps every other pin); to move pins on
## purpose: `make lock LOCK_ARGS="--upgrade-package duckdb"` or LOCK_ARGS=--upgrade (see README).
lock: $(UV_HOME)/.uv-$(UV_VERSION)
	$(UV) lock --python $(PYTHON) $(LOCK_ARGS)

## The full fuzz run of the parser and validator (>= 20,000 inputs, both cores; see
## price_pipeline_tests/fuzz/README.md). Holds /tmp/pp-heavy.lock so heavy jobs never overlap.
fuzz: $(STAMP)
	flock /tmp/pp-heavy.lock $(BIN)/python -m price_pipeline_tests.fuzz $(FUZZ_ARGS)

## Run the demo end to end on a fresh instance (as `make run` does) and write a canonical fingerprint
## of its outputs (prices, marts, exports; benchmarks/demo_fingerprint.py) to FINGERPRINT_OUT;
## with BASELINE=<fingerprint.json> compare with it (exit 1 on any difference). Holds /tmp/pp-heavy.lock.
FINGERPRINT_OUT ?= .data/demo-fingerprint.json
demo-fingerprint: manifest
	flock /tmp/pp-heavy.lock $(BIN)/python benchmarks/demo_fingerprint.py run --out $(FINGERPRINT_OUT) \
		$(if $(BASELINE),--compare $(BASELINE)) $(FINGERPRINT_ARGS)

## The national rehearsal at full size (benchmarks/national_rehearsal.py; default 1,000 hospitals, up to
## 40 min; e.g. REHEARSAL_ARGS="--hospitals 6100" or "--production"). Holds /tmp/pp-heavy.lock. Its small
## variant (100 hospitals, tiny files) is a test in `make test` (integration/test_national_rehearsal.py).
REHEARSAL_ARGS ?=
rehearsal: manifest
	flock /tmp/pp-heavy.lock $(BIN)/python benchmarks/national_rehearsal.py $(REHEARSAL_ARGS)

clean:
	rm -rf .data .dagster_home/storage .dagster_home/history .dagster_home/logs .dagster_home/schedules \
		dbt_analytics/target dbt_analytics/logs
