"""Indexes that keep queue figures cheap however deep the outbox is.

``thrive sync status`` and the metrics refresh (every few seconds) asked for the in-flight count, the
oldest pending save and the last send with full scans of the outbox: ~1 s at 300k rows on SQLite, and
the worker's writes queued behind it. Partial indexes answer each from a short index range:
in flight = pending rows by lease expiry, oldest = pending rows by save time, last send = sent rows by
send time.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")
SENT = sa.text("status = 'sent'")


def upgrade() -> None:
    op.create_index(
        "ix_outbox_pending_lease", "outbox", ["lease_until"], postgresql_where=PENDING, sqlite_where=PENDING
    )
    op.create_index(
        "ix_outbox_pending_created", "outbox", ["created_at"], postgresql_where=PENDING, sqlite_where=PENDING
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"], postgresql_where=SENT, sqlite_where=SENT)


def downgrade() -> None:
    for name in ("ix_outbox_sent_at", "ix_outbox_pending_created", "ix_outbox_pending_lease"):
        op.drop_index(name, "outbox")
