"""The duty-phone registry: units, weekly roster versions, duty checks and reminders."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, new_id, utcnow


def _enum(cls: type[enum.Enum], length: int) -> Enum:
    return Enum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class UnitKind(enum.StrEnum):
    """联动单位 (a county department) or 乡镇 (a township)."""

    LINKAGE = "linkage"
    TOWNSHIP = "township"


class DutyCheckOutcome(enum.StrEnum):
    """How a 查岗 call ended: only PASSED means someone answered and pressed 1."""

    PASSED = "pass"
    NO_ANSWER = "no_answer"
    NO_KEY = "no_key"
    BUSY = "busy"
    FAILED = "failed"


class Unit(Base):
    """A linkage unit or township on the county's duty list."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[UnitKind] = mapped_column(_enum(UnitKind, 20))
    fallback_number: Mapped[str | None] = mapped_column(String(40), default=None)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Roster(Base):
    """One submitted version of a unit's roster for one ISO week; the highest version counts.

    `staff` is a list of {"name", "phone", "order", "shift": {"days", "start", "end"} | null};
    phones are canonical numbers (see registry/numbers.py). Versions are never changed.
    """

    __tablename__ = "rosters"
    __table_args__ = (
        UniqueConstraint("unit_id", "week", "version", name="uq_rosters_unit_week_version"),
        Index("ix_rosters_week", "week"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))
    version: Mapped[int]
    leader_name: Mapped[str] = mapped_column(String(100))
    leader_phone: Mapped[str] = mapped_column(String(40))
    staff: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    submitted_by: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)


class DutyCheck(Base):
    """The result of one 查岗 call to a unit's on-duty phone."""

    __tablename__ = "duty_checks"
    __table_args__ = (Index("ix_duty_checks_unit_started", "unit_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))
    number: Mapped[str] = mapped_column(String(40))
    person: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[DutyCheckOutcome] = mapped_column(_enum(DutyCheckOutcome, 20))
    key_pressed: Mapped[str | None] = mapped_column(String(4), default=None)
    detail: Mapped[str | None] = mapped_column(String(200), default=None)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]


class RegistryNotification(Base):
    """A reminder raised by a registry job, e.g. a unit that has not reported next week's roster."""

    __tablename__ = "registry_notifications"
    __table_args__ = (Index("ix_registry_notifications_week", "week"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
