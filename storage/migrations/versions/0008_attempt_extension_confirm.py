"""call attempts: extension keyed in, answer confirmed

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 05:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extension", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("extension_sent_at", storage.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("confirmed_at", storage.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("call_attempts", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("extension_sent_at")
        batch_op.drop_column("extension")
