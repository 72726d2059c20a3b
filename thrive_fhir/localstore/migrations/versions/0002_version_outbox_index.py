"""Index resource versions by outbox row: the worker loads a batch's versions by row id.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_local_resource_version_outbox", "local_resource_version", ["outbox_id"])


def downgrade() -> None:
    op.drop_index("ix_local_resource_version_outbox", "local_resource_version")
