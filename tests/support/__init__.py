"""Test support shared by several test folders and by ``benchmarks/`` (test code only: it is not
part of the wheel, which packages ``thrive_fhir``, ``smart_app`` and ``thrive_demo``).

- :mod:`tests.support.servers`: free loopback ports, waiting until a server answers, throwaway
  PostgreSQL databases, sekmet-fhir and our own store as restartable processes.
- :mod:`tests.support.app`: the clinician app without OAuth (``test_config``, ``make_launch``),
  browser and axe-core helpers, a seeded plan, and the live stack (sandbox + app on loopback).
- :mod:`tests.support.store_data`, :mod:`tests.support.store_servers`: resources and servers for
  the FHIR store contract tests.
- :mod:`tests.support.sync_workers`, ``sync_synthetic``, ``sync_verify``, ``sync_faultproxy``: the
  sync tests' workers, synthetic saves, end-state checks and the fault-injecting proxy.
- :mod:`tests.support.validation_helpers`: the validator, examples and error pairs.

Import them as ``from tests.support.servers import free_port``: pytest puts the repository root on
``sys.path`` (``pythonpath`` in pyproject.toml), and benchmarks run as ``python -m benchmarks.<name>``
from the repository root.
"""
