"""The local id -> store id map: ``sync_resource_state.store_id``.

Some shared stores assign their own ids (Medplum for ordinary clients, cloud stores without
update-as-create): the worker then creates by business identifier and learns the id the store chose
from the answer (Location, or the returned resource). References in later pushes are rewritten
through this map. In the default mode (deterministic ids) the store id equals the local id.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_resource_state") as batch:
        batch.add_column(sa.Column("store_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_resource_state") as batch:
        batch.drop_column("store_id")
