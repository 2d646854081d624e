"""The webhook outbox gets a `status` (pending, sending, delivered), so its rows are claimed by
the one lease helper of the claimed tables (storage/claims.py `LeaseTable`) like the surveys'.

Existing rows: delivered when `delivered_at` is set, sending while a lease is held, else
pending. The index on (delivered_at, next_attempt_at) becomes one on (status, next_attempt_at),
what the claim reads.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_STATUS = sa.Enum(
    "pending", "sending", "delivered", name="outboxstatus", native_enum=False, length=20
)


def upgrade() -> None:
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.add_column(sa.Column("status", _STATUS, nullable=False, server_default="pending"))
    op.execute(
        "UPDATE webhook_outbox SET status = CASE"
        " WHEN delivered_at IS NOT NULL THEN 'delivered'"
        " WHEN claimed_until IS NOT NULL THEN 'sending'"
        " ELSE 'pending' END"
    )
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.alter_column("status", existing_type=_STATUS, server_default=None)
        batch.drop_index("ix_webhook_outbox_delivered_at_next_attempt_at")
        batch.create_index(
            "ix_webhook_outbox_status_next_attempt_at", ["status", "next_attempt_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.drop_index("ix_webhook_outbox_status_next_attempt_at")
        batch.create_index(
            "ix_webhook_outbox_delivered_at_next_attempt_at", ["delivered_at", "next_attempt_at"]
        )
        batch.drop_column("status")
