# Every target creates or reuses .venv, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint typecheck docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/rollout-yaml run --env dev

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check rollout_yaml tests benchmarks
	$(BIN)/ruff format --check rollout_yaml tests benchmarks
	$(BIN)/mypy rollout_yaml

docs: $(STAMP)
	$(BIN)/python -m rollout_yaml.config.docgen docs/diagnostics.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
