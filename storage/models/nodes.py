"""Service nodes sharing one database: who is alive (heartbeats) and who was declared lost."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, utcnow


class Node(Base):
    """One linkcall process (`LINKCALL_NODE_NAME`) and its heartbeat."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    url: Mapped[str | None] = mapped_column(String(300), default=None)
    state: Mapped[str] = mapped_column(String(10), default="up")  # up | stopped | lost
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    lost_at: Mapped[datetime | None] = mapped_column(default=None)
    lost_by: Mapped[str | None] = mapped_column(String(100), default=None)
