"""Local system-of-record tables and the transactional outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "local_resource",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("patient_key", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_local_resource_patient", "local_resource", ["patient_key", "resource_type"])
    op.create_table(
        "local_resource_version",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("saved_at", sa.Float, nullable=False),
        sa.Column("outbox_id", RowId, nullable=False),
    )
    op.create_table("patient_lock", sa.Column("patient_key", sa.String(128), primary_key=True))
    op.create_table(
        "outbox",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(36), nullable=False, unique=True),
        sa.Column("patient_key", sa.String(128), nullable=False),
        sa.Column("activity", sa.String(16), nullable=False),
        sa.Column("author_ref", sa.String(256), nullable=False),
        sa.Column("organization_ref", sa.String(256), nullable=False),
        sa.Column("entries", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.Float),
        sa.Column("needs_check", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("sent_at", sa.Float),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.String(256)),
        sa.Column("outcome", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    pending = sa.text("status = 'pending'")
    op.create_index("ix_outbox_pending", "outbox", ["id"], postgresql_where=pending, sqlite_where=pending)
    op.create_index(
        "ix_outbox_patient_pending",
        "outbox",
        ["patient_key", "id"],
        postgresql_where=pending,
        sqlite_where=pending,
    )
    op.create_index("ix_outbox_status", "outbox", ["status", "id"])
    op.create_table(
        "sync_resource_state",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_id", sa.String(64), primary_key=True),
        sa.Column("store_version", sa.String(64)),
        sa.Column("local_version", sa.Integer, nullable=False),
        sa.Column("outbox_id", RowId, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "outbox_event",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", RowId, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("detail", sa.String(512)),
    )
    op.create_index("ix_outbox_event_outbox_id", "outbox_event", ["outbox_id"])


def downgrade() -> None:
    for name in (
        "outbox_event",
        "sync_resource_state",
        "outbox",
        "patient_lock",
        "local_resource_version",
        "local_resource",
    ):
        op.drop_table(name)
