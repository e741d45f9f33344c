# One environment in .venv (created or reused); see README.md.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data/synthetic
NUM_SEQUENCES ?= 3000

.PHONY: venv test test-fast lint demo data bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

## the whole test suite (what CI runs)
test: $(STAMP)
	$(PY) -m pytest -q -ra

## the quick part of the suite (skips tests marked slow)
test-fast: $(STAMP)
	$(PY) -m pytest -q -ra -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

$(DATA)/train.csv: | $(STAMP)
	$(PY) scripts/make_synthetic.py --out $(DATA) --num-sequences $(NUM_SEQUENCES) --seed 0

data: $(DATA)/train.csv

bench: $(DATA)/train.csv
	$(PY) scripts/bench_data.py --data_dir $(DATA)

## the main job: environment, synthetic Kaggle-format data, data benchmark
demo: bench
