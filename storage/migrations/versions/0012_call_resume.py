"""Call recovery after a crash (issue 18): a call may have several recording segments, and a
call that was carried on after a restart keeps when it stopped and when it resumed.

- recordings: the unique constraint on call_id goes (an index stays); `segment` numbers the
  segments of one call from 1.
- calls: `gap_started_at` (the end of the audio before the crash) and `resumed_at` (the parties
  were joined again), both NULL for a call that was never interrupted and resumed.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 08:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.base

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.drop_constraint("uq_recordings_call_id", type_="unique")
        batch.add_column(sa.Column("segment", sa.Integer(), nullable=False, server_default="1"))
        batch.create_index("ix_recordings_call_id", ["call_id"], unique=False)
    with op.batch_alter_table("calls") as batch:
        batch.add_column(
            sa.Column("gap_started_at", storage.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("resumed_at", storage.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("resumed_at")
        batch.drop_column("gap_started_at")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_index("ix_recordings_call_id")
        batch.drop_column("segment")
        batch.create_unique_constraint("uq_recordings_call_id", ["call_id"])
