"""leg dialog state and recovery result

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_legs") as batch:
        batch.add_column(sa.Column("dialog", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("recovery", sa.String(length=60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_legs") as batch:
        batch.drop_column("recovery")
        batch.drop_column("dialog")
