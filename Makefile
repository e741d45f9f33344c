# One environment in .venv (created or reused); see README.md.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data/synthetic
NUM_SEQUENCES ?= 3000

# the best recipe measured for the CPU (RESULTS.md): the quickstart with the Conformer encoder
RECIPE ?= --config configs/quickstart.yaml --config configs/conformer_cpu.yaml
RUN ?= runs/demo
SUB ?= artifacts/demo

.PHONY: venv test test-fast lint demo data bench fit export evaluate curves clean-demo

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

$(RUN)/checkpoints/last.ckpt: $(DATA)/train.csv
	$(PY) scripts/fit.py $(RECIPE) --data.data_dir $(DATA) --trainer.default_root_dir $(RUN)

fit: $(RUN)/checkpoints/last.ckpt

$(SUB)/submission.zip: $(RUN)/checkpoints/last.ckpt
	$(PY) scripts/export_tflite.py --ckpt "$$(ls -t $(RUN)/checkpoints/best-*.ckpt | head -1)" \
		--out $(SUB)

export: $(SUB)/submission.zip

evaluate: $(SUB)/submission.zip
	$(PY) scripts/evaluate.py --submission $(SUB)/submission.zip --data_dir $(DATA) --split val \
		--ckpt "$$(ls -t $(RUN)/checkpoints/best-*.ckpt | head -1)"

curves: $(RUN)/checkpoints/last.ckpt
	$(PY) scripts/plot_curves.py --run $(RUN)

## the main job: environment, synthetic data, fit (CPU), TFLite export, scores side by side, curves
## (re-running reuses what exists; `make clean-demo` forgets the run and the submission)
demo: evaluate curves

clean-demo:
	rm -rf $(RUN) $(SUB)
