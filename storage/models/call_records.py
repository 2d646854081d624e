"""Calls, their legs and dial attempts, and recordings (issue 5).

A call is any conversation the service carries: an inbound call, a bridged three-way call, a
callback survey or a duty check. Every call gets a recording. States and reasons are plain
strings from the call flows (callflows.events.EndReason values), so the database can be read
without the code.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage.base import Base, new_id, utcnow


def _enum(cls: type[enum.Enum], length: int = 20) -> Enum:
    return Enum(
        cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e]
    )


class CallKind(enum.StrEnum):
    """What the call is for."""

    INBOUND = "inbound"
    BRIDGE = "bridge"
    CALLBACK = "callback"
    DUTY_CHECK = "duty_check"
    REMINDER = "reminder"


class CallState(enum.StrEnum):
    """A call's life: dialing → connected → ended, or failed before it ever connected."""

    DIALING = "dialing"
    CONNECTED = "connected"
    ENDED = "ended"
    FAILED = "failed"


class RecordingState(enum.StrEnum):
    """A recording's life."""

    RECORDING = "recording"
    FINALISED = "finalised"
    INTERRUPTED = "interrupted"  # finalised by crash recovery
    FAILED = "failed"  # the writer failed (e.g. disk full); see `error`
    PURGED = "purged"  # its files were deleted after the retention period; the row stays


class Call(Base):
    """One call the service carried."""

    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[CallKind] = mapped_column(_enum(CallKind))
    state: Mapped[CallState] = mapped_column(_enum(CallState), default=CallState.DIALING)
    incident_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    unit_code: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None, unique=True)
    created_by: Mapped[str] = mapped_column(String(200), default="system")
    node: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    connected_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    end_reason: Mapped[str | None] = mapped_column(String(60), default=None)
    interrupted: Mapped[bool] = mapped_column(default=False)
    # a call carried on after a crash (LINKCALL_RECOVER_CALLS): the end of the audio before the
    # crash, and when the parties were joined again (docs/callflows.md, "After a crash")
    gap_started_at: Mapped[datetime | None] = mapped_column(default=None)
    resumed_at: Mapped[datetime | None] = mapped_column(default=None)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    legs: Mapped[list[Leg]] = relationship(
        back_populates="call", order_by="Leg.id", cascade="all, delete-orphan"
    )
    attempts: Mapped[list[Attempt]] = relationship(
        order_by="Attempt.id", cascade="all, delete-orphan"
    )
    # one segment per stretch of recorded audio: 1, then 2 after a crash the call survived
    recordings: Mapped[list[Recording]] = relationship(
        back_populates="call", order_by="Recording.segment"
    )

    @property
    def recording(self) -> Recording | None:
        """The first segment (the call's recording as the API names it)."""
        return self.recordings[0] if self.recordings else None

    @property
    def last_recording(self) -> Recording | None:
        """The segment being written, or the last one written."""
        return self.recordings[-1] if self.recordings else None


class Leg(Base):
    """One party of a call (caller, dispatcher, unit, or the callee of a callback)."""

    __tablename__ = "call_legs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    number: Mapped[str | None] = mapped_column(String(40), default=None)
    state: Mapped[str] = mapped_column(String(20), default="idle")
    direction: Mapped[str] = mapped_column(String(10), default="outbound")
    sip_call_id: Mapped[str | None] = mapped_column(String(200), default=None)
    muted: Mapped[bool] = mapped_column(default=False)
    held: Mapped[bool] = mapped_column(default=False)
    connected_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    end_reason: Mapped[str | None] = mapped_column(String(60), default=None)
    # the SIP dialog of the answered leg (telephony Dialog.to_state), so another process can end
    # it after a crash; `recovery` is what that process did (`bye 200`, `bye timeout`, ...)
    dialog: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    recovery: Mapped[str | None] = mapped_column(String(60), default=None)

    call: Mapped[Call] = relationship(back_populates="legs")


class Attempt(Base):
    """One number dialled for a party, and how it went."""

    __tablename__ = "call_attempts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    leg_key: Mapped[str] = mapped_column(String(40))
    number: Mapped[str] = mapped_column(String(40))
    label: Mapped[str | None] = mapped_column(String(200), default=None)
    result: Mapped[str | None] = mapped_column(String(30), default=None)
    sip_status: Mapped[int | None] = mapped_column(Integer, default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # a landline behind a switchboard: the digits keyed in after the answer, and when
    extension: Mapped[str | None] = mapped_column(String(16), default=None)
    extension_sent_at: Mapped[datetime | None] = mapped_column(default=None)
    # when the person who answered pressed 1 to take the call for the unit (确认接听)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)


class Recording(Base):
    """One segment of a call's recording: where its files are and what they hashed to."""

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="RESTRICT"), index=True)
    segment: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    state: Mapped[RecordingState] = mapped_column(
        _enum(RecordingState), default=RecordingState.RECORDING
    )
    directory: Mapped[str] = mapped_column(String(500))
    tracks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    duration_s: Mapped[float | None] = mapped_column(Float, default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finalised_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    health: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # legal hold: never purged while set (POST /api/v1/recordings/{id}/hold, /release)
    legal_hold: Mapped[bool] = mapped_column(default=False, server_default=false())
    hold_reason: Mapped[str | None] = mapped_column(Text, default=None)
    held_by: Mapped[str | None] = mapped_column(String(200), default=None)
    held_at: Mapped[datetime | None] = mapped_column(default=None)
    purged_at: Mapped[datetime | None] = mapped_column(default=None)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)

    call: Mapped[Call] = relationship(back_populates="recordings")
