# make run: launch the app on the built-in demo.  make test: run the whole suite (one worker per core, at most 4).
# make test-gpu: the checks that need a CUDA GPU (gpu_tests/; CI has none).
# Each creates .venv and installs the package (with its dev extra) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-gpu bench clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/cnnexplorer

test: $(VENV)/.installed
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n auto --maxprocesses 4

test-gpu: $(VENV)/.installed
	$(PY) -m pytest -q gpu_tests

bench: $(VENV)/.installed
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info
