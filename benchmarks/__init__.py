"""Benchmarks: run from the repository root as modules, e.g. ``python -m benchmarks.validate --help``,
so they can import each other and ``tests.support`` without touching sys.path."""
