# Make targets for concede. Quick start: `make run` and `make test`.
# `make` sets up $(VENV) on first use: torch==2.13.0 (CPU) first, then the project
# in editable mode with its dev extras, which installs the `concede` command in $(VENV)/bin.

PYTHON ?= python3
VENV ?= .venv
PY = $(VENV)/bin/python
CONCEDE = $(VENV)/bin/concede
PIP = $(PY) -m pip
STAMP = $(VENV)/.stamp
KERNELS = $(VENV)/.kernels
TORCH_VERSION ?= 2.13.0
ARGS ?=

LINT_PATHS = envs agents experiments tests

.DEFAULT_GOAL := setup
.PHONY: setup run test test-all lint bench bench-serve calibrate clean distclean

setup: $(STAMP) $(KERNELS)

# Re-runs only when pyproject.toml changes, the venv is new, or a top-level package
# appears (the editable install maps the packages that exist when it runs).
PKG_INITS = $(wildcard envs/__init__.py agents/__init__.py experiments/__init__.py conf/__init__.py)

$(STAMP): pyproject.toml $(PKG_INITS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e ".[dev,ray]"
	touch $@

# numba compiles the simulator's kernels once into its cache on disk, here rather than in
# the first run or test; again whenever the kernels change.
$(KERNELS): $(STAMP) envs/kernels.py
	$(PY) -m envs.compile
	touch $@

run: setup
	$(CONCEDE) run $(ARGS)

test: setup
	$(PY) -m pytest -n 2

test-all: setup
	$(PY) -m pytest -n 2 -m ""

lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

bench: setup
	$(CONCEDE) bench env
	$(CONCEDE) bench evaluate

bench-serve: setup
	$(CONCEDE) bench serve

calibrate: setup
	$(CONCEDE) calibrate

clean:
	rm -rf outputs multirun .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
	rm -rf *.egg-info $(KERNELS)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
