# The two commands the README promises: `make run` and `make test`.
PY := .venv/bin/python

.PHONY: setup run test lint format
setup:
	@bash scripts/setup.sh

run: setup
	$(PY) launch.py $(ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && .venv/bin/lint-imports

format: setup
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .
