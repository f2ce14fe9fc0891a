# The few commands a person needs. `make test` is what CI runs.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0  # the CPU wheel first: resolving torch from .[dev] alone can pull CUDA
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/xgb_cost.py

clean:
	rm -rf outputs multirun mlruns mlartifacts mlflow.db optuna.db optuna.journal*
