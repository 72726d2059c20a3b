# The two commands the README opens with. Each sets up everything it needs from this repo's files.
.PHONY: demo test setup bench

demo:
	scripts/setup.sh
	.venv/bin/thrive demo

test:
	scripts/setup.sh --dev
	.venv/bin/python -m pytest

bench:
	scripts/setup.sh --dev
	.venv/bin/python benchmarks/validate.py
