# Every target creates or reuses .venv, so a fresh clone needs nothing else.
# `make run` installs only what running needs; `make test`, `lint` and `bench` add the `dev`
# extra. One stamp per install: switching between them never reinstalls what is there.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test drills bench mutate lint typecheck docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

# the dev extra holds every runtime dependency too, so it satisfies `make run` as well
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP) $(RUN_STAMP)

RUN_ARGS ?=
run: $(RUN_STAMP)
	$(BIN)/rollout-yaml run --env dev $(RUN_ARGS)

# tests wait on daemons and Apps more than they compute: one worker per core, a file each
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# `make bench BENCH="peers recovery"` runs only those (`python -m benchmarks --help` lists them)
# Longer drills than `make test` affords: the notification receiver down for 30 s
drills: $(DEV_STAMP)
	ROLLOUT_NOTIFY_DRILL_DOWN=30 $(BIN)/python -m pytest -q tests/test_notifications.py -k down

bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks $(BENCH)

# Mutation testing (long: not part of `make test`); surviving mutants are listed in docs/testing.md
mutate: $(DEV_STAMP)
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/mutmut results

lint: $(DEV_STAMP)
	$(BIN)/ruff check rollout_yaml tests benchmarks
	$(BIN)/ruff format --check rollout_yaml tests benchmarks
	$(BIN)/mypy rollout_yaml

docs: $(RUN_STAMP)
	$(BIN)/python -m rollout_yaml.config.docgen docs/diagnostics.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
