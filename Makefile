# The two commands the README opens with. Each sets up everything it needs from this repo's files.
.PHONY: demo test test-fast lint setup bench

demo:
	scripts/setup.sh
	.venv/bin/thrive demo

# The suite runs on TEST_WORKERS processes, a module at a time each (pytest-xdist), long modules first
# (tests/conftest.py): most tests wait on servers they start, so 4 workers keep 2 cores busy. Module
# by module, because many modules start one server stack for all their tests. TEST_WORKERS=0 runs it
# in one process. One test alone: .venv/bin/python -m pytest tests/path.py::name
TEST_WORKERS ?= 4
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test:
	scripts/setup.sh --dev
	.venv/bin/python -m pytest $(PYTEST_PARALLEL)

# For a newcomer without PostgreSQL or Chromium: every test except those marked postgres, browser or
# slow (tests/conftest.py marks them from the fixtures they use). `make test` still runs everything.
test-fast:
	scripts/setup.sh --dev --no-browser
	.venv/bin/python -m pytest $(PYTEST_PARALLEL) -m "not postgres and not browser and not slow"

# ruff (lint + format check) and mypy, configured in pyproject.toml; also run by pre-commit.
lint:
	scripts/setup.sh --dev --no-browser
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench:
	scripts/setup.sh --dev
	.venv/bin/python -m benchmarks.validate
