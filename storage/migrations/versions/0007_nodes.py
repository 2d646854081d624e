"""nodes and heartbeats

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 05:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=300), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("started_at", storage.base.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", storage.base.UTCDateTime(), nullable=False),
        sa.Column("lost_at", storage.base.UTCDateTime(), nullable=True),
        sa.Column("lost_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_nodes")),
    )
    op.create_index(op.f("ix_nodes_heartbeat_at"), "nodes", ["heartbeat_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_nodes_heartbeat_at"), table_name="nodes")
    op.drop_table("nodes")
