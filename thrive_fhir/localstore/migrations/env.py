"""Alembic environment for the local store.

Always driven from ``LocalStore.migrate()``, which hands over an open connection; the version table
has its own name so the local store can share a database with other parts that also use Alembic.
"""

from alembic import context

from thrive_fhir.localstore.models import metadata

VERSION_TABLE = "thrive_localstore_version"

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by calling the alembic CLI by hand
    raise SystemExit("run migrations with LocalStore(url).migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
