# The two commands the README opens with. Each sets up everything it needs from this repo's files.
.PHONY: demo test test-fast lint setup bench

demo:
	scripts/setup.sh
	.venv/bin/thrive demo

test:
	scripts/setup.sh --dev
	.venv/bin/python -m pytest

# For a newcomer without PostgreSQL or Chromium: every test except those marked postgres, browser or
# slow (tests/conftest.py marks them from the fixtures they use). `make test` still runs everything.
test-fast:
	scripts/setup.sh --dev --no-browser
	.venv/bin/python -m pytest -m "not postgres and not browser and not slow"

# ruff (lint + format check) and mypy, configured in pyproject.toml; also run by pre-commit.
lint:
	scripts/setup.sh --dev --no-browser
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench:
	scripts/setup.sh --dev
	.venv/bin/python -m benchmarks.validate
