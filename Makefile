# The two commands the README promises: `make run` and `make test`.
PY := .venv/bin/python

.PHONY: setup run test lint format
setup:
	@bash scripts/setup.sh

run: setup
	$(PY) launch.py $(ARGS)

# One pytest-xdist worker per core, each pinned to its core, a test file (or a group of files
# that share a server) at a time: tests/conftest.py. `make test WORKERS=0`: one process.
WORKERS ?= auto
test: setup
	$(PY) -m pytest -n $(WORKERS) $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && .venv/bin/lint-imports

format: setup
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .
