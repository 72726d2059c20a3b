"""Helpers for tests and benchmarks (development only: nothing in the product imports this package).

:mod:`thrive_fhir.testing.servers` starts and waits for real servers on loopback and makes
throwaway PostgreSQL databases, so the test folders and the scripts under ``benchmarks/`` share one
way of doing it.
"""
