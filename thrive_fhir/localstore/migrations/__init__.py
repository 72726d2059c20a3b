"""Alembic migrations for the local store (run through ``LocalStore.migrate()``)."""
