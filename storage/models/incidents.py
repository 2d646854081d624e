"""Incidents (警情) and their transitions: received → diverted → accepted → closed → surveyed.

An incident is one matter a citizen reported to 110. Non-police matters are diverted (分流) to a
linkage unit or township, which accepts and closes them with feedback (办结反馈); the center then
calls the reporter back (回访). Every change of state is a stored `IncidentTransition` with the
actor and the time, so the timeline is the table, not a log line.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, new_id, utcnow


def _enum(cls: type[enum.Enum], length: int = 20) -> Enum:
    return Enum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class IncidentCategory(enum.StrEnum):
    """警务 (police) or 非警务 (non-police, to be diverted)."""

    POLICE = "police"
    NON_POLICE = "non_police"


class IncidentState(enum.StrEnum):
    """Where an incident stands."""

    RECEIVED = "received"
    DIVERTED = "diverted"
    ACCEPTED = "accepted"
    CLOSED = "closed"
    SURVEYED = "surveyed"


class Incident(Base):
    """One reported matter. `unit_code` is the unit it was diverted to (None: not diverted)."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_received_at", "received_at"),
        Index("ix_incidents_state", "state"),
        Index("ix_incidents_unit_code", "unit_code"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    reporter_number: Mapped[str] = mapped_column(String(40))
    category: Mapped[IncidentCategory] = mapped_column(_enum(IncidentCategory))
    type: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    state: Mapped[IncidentState] = mapped_column(
        _enum(IncidentState), default=IncidentState.RECEIVED
    )
    unit_code: Mapped[str | None] = mapped_column(String(40), default=None)
    feedback: Mapped[str | None] = mapped_column(Text, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    rework: Mapped[bool] = mapped_column(default=False)
    rework_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    transitions: Mapped[list[IncidentTransition]] = relationship(
        order_by="IncidentTransition.id", cascade="all, delete-orphan"
    )


class IncidentTransition(Base):
    """One change of an incident's state (the first row has `from_state` None: received)."""

    __tablename__ = "incident_transitions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    from_state: Mapped[IncidentState | None] = mapped_column(_enum(IncidentState), default=None)
    to_state: Mapped[IncidentState] = mapped_column(_enum(IncidentState))
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    unit_code: Mapped[str | None] = mapped_column(String(40), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)
