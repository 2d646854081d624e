"""Events fed into the call flows: what the telephony stack reports and what the API requests.

Leg events come from the runner (the SIP user agent and media engine translated into plain
values); requests come from the API on behalf of a dispatcher. Every event is a frozen
dataclass; time is never part of an event but passed beside it to `handle(event, now)`.

End reasons are the SIP user agent's, as plain lowercase strings, so callflows does not import
telephony: see `EndReason`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from callflows.destination import Destination


class Role(enum.StrEnum):
    """A party of a bridged call: caller, dispatcher, the unit, and units added later."""

    CALLER = "caller"
    DISPATCHER = "dispatcher"
    UNIT = "unit"
    UNIT2 = "unit2"
    UNIT3 = "unit3"

    @property
    def is_unit(self) -> bool:
        """True for the unit and every unit added to the bridge later."""
        return self.value.startswith("unit")


BASE_ROLES: tuple[Role, ...] = (Role.CALLER, Role.DISPATCHER, Role.UNIT)
"""The three parties every bridge plans for (dial stages, required parties)."""
EXTRA_UNITS: tuple[Role, ...] = (Role.UNIT2, Role.UNIT3)
"""Roles of the units a dispatcher adds to a live bridge (`AddParty`), in order."""


class EndReason(enum.StrEnum):
    """Why a leg ended, as reported by the SIP user agent (telephony.sip), lowercase."""

    NORMAL_LOCAL = "normal_local"
    NORMAL_REMOTE = "normal_remote"
    BUSY = "busy"
    DECLINED = "declined"
    NOT_FOUND = "not_found"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    AUTH_FAILED = "auth_failed"
    INCOMPATIBLE = "incompatible"
    REJECTED = "rejected"
    FAILED = "failed"


# --- leg events (from the runner) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegRinging:
    """The far end is alerting (180/183)."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class LegAnswered:
    """The far end answered (2xx, ACKed); media flows."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class LegEnded:
    """The leg is gone: failed before answer, cancelled, or hung up by either side.

    `reason` is an `EndReason` value (any other string is treated like "failed").
    """

    leg_id: str
    reason: str
    sip_status: int | None = None


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A key pressed on the leg (RFC 4733, SIP INFO or in-band: the runner does not say)."""

    leg_id: str
    digit: str


@dataclass(frozen=True, slots=True)
class DigitsSent:
    """The digits of a `SendDigits` went out (`ok`), or could not be sent (`ok=False`)."""

    leg_id: str
    ok: bool = True


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    """A prompt started by `Play` reached its end. A prompt cut short by `StopPlayback` (or by
    the leg ending) reports nothing: the flow already knows."""

    leg_id: str
    prompt: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer started by `StartTimer` expired (and was not cancelled first)."""

    timer_id: str


# --- requests (from the API) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HangupParty:
    """Drop a party: hang up its call (or stop dialling it)."""

    role: Role


@dataclass(frozen=True, slots=True)
class RedialParty:
    """Dial a party again from the top of its dial list (after it left or was unreachable)."""

    role: Role


@dataclass(frozen=True, slots=True)
class MuteParty:
    """The others stop hearing this party."""

    role: Role


@dataclass(frozen=True, slots=True)
class UnmuteParty:
    """Undo `MuteParty`."""

    role: Role


@dataclass(frozen=True, slots=True)
class HoldParty:
    """Put a party on hold: it hears nobody and nobody hears it, the others go on talking."""

    role: Role


@dataclass(frozen=True, slots=True)
class UnholdParty:
    """Undo `HoldParty`."""

    role: Role


@dataclass(frozen=True, slots=True)
class EndBridge:
    """End the whole bridge: hang up every party and stop dialling."""


@dataclass(frozen=True, slots=True)
class AddUnit:
    """Bring a unit into a bridge that has none yet (e.g. an inbound call); numbers in order."""

    numbers: tuple[str | Destination, ...]


@dataclass(frozen=True, slots=True)
class AddParty:
    """Add one more unit to a bridge (role unit2, unit3, ...); its dial list in order."""

    numbers: tuple[str | Destination, ...]


@dataclass(frozen=True, slots=True)
class ReplaceUnit:
    """Hang up the unit of `role` (or stop dialling it) and dial another one in its place."""

    numbers: tuple[str | Destination, ...]
    role: Role = Role.UNIT


LegEvent = LegRinging | LegAnswered | LegEnded | DtmfReceived | PlaybackFinished | DigitsSent
Request = (
    HangupParty
    | RedialParty
    | MuteParty
    | UnmuteParty
    | HoldParty
    | UnholdParty
    | EndBridge
    | AddUnit
    | AddParty
    | ReplaceUnit
)
Event = LegEvent | TimerFired | Request
