"""api_tokens.expires_at: tokens expire (issue 13, finding 8)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 05:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.base

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # tokens made before this revision keep working until an admin revokes them (NULL: no
    # expiry); `linkcall tokens list` shows them as "no expiry"
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("expires_at", storage.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
