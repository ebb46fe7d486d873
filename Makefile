# chainwatch: every command a newcomer, CI or the README needs. Each target sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.chainwatch-installed
DB ?= data/warehouse/chainwatch.duckdb
LANDING ?= data/landing
SAMPLE_ARGS := --seed 11 --agents 16 --days 2 --actions 3000 --start 2026-11-01

.PHONY: venv demo test bench lint typecheck fmt dev sample clean
SIZES ?= 1000000

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## demo: run the real Dagster job on the committed sample, print what it found
demo: venv
	@test -f data/samples/labels.jsonl || $(BIN)/chainwatch simulate --out data/samples $(SAMPLE_ARGS)
	rm -rf $(LANDING) $(DB) $(DB).wal
	mkdir -p $(LANDING)
	cp -r $$(find data/samples -mindepth 1 -maxdepth 1 -type d) $(LANDING)/
	$(BIN)/chainwatch run --landing $(LANDING) --db $(DB)
	$(BIN)/chainwatch report --db $(DB)
	$(BIN)/chainwatch investigate --top --db $(DB) --out $(dir $(DB))investigations

## test: lint and type check, then the whole suite on both cores, slow tests included (as CI runs it)
test: lint typecheck
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=25

## bench: end-to-end speed and memory against the parse floor (sizes: make bench SIZES="1000000 10000000")
bench: venv
	$(BIN)/python -m benchmarks.pipeline $(foreach n,$(SIZES),--actions $(n))

## lint: ruff's checks and formatting
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## typecheck: mypy on detectors, pipelines and chainwatch (settings and ratchet lists in pyproject.toml)
typecheck: venv
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## dev: the Dagster UI with lineage, schedule and sensor (http://127.0.0.1:3000)
dev: venv
	mkdir -p .dagster_home
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(BIN)/dagster dev -m pipelines.definitions

## sample: regenerate the committed sample data
sample: venv
	rm -rf data/samples
	$(BIN)/chainwatch simulate --out data/samples $(SAMPLE_ARGS)

clean:
	rm -rf $(VENV) data/warehouse $(LANDING) .pytest_cache .ruff_cache .mypy_cache
