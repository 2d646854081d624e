"""One party of a bridge (caller, dispatcher or unit): its dial list, legs and state.

Party states and their legal transitions (the one table, `PARTY_TRANSITIONS`)::

    ABSENT ──AddUnit──▶ DIALING ──answer──▶ CONNECTED ──hang-up / drop──▶ LEFT
    WAITING ─stage─▶ DIALING ──list exhausted──▶ UNREACHABLE
    DIALING ──drop / bridge over──▶ LEFT        LEFT, UNREACHABLE ──redial──▶ DIALING
    WAITING ──bridge over / drop──▶ LEFT
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from callflows.commands import Command, Hangup, Hold, Mute, Notify, Unhold, Unmute
from callflows.dialing import Attempt, DialerStatus, LegIds, SequentialDialer
from callflows.errors import IllegalTransitionError, PartyStateError
from callflows.events import Role

log = logging.getLogger(__name__)


class PartyState(enum.Enum):
    """Where a party of a bridge is."""

    ABSENT = "absent"  # not in the bridge (yet): the unit of an inbound call before AddUnit
    WAITING = "waiting"  # its dial stage has not come yet
    DIALING = "dialing"
    CONNECTED = "connected"  # answered and joined to the conference
    LEFT = "left"  # hung up, dropped, or stopped being dialled
    UNREACHABLE = "unreachable"  # every number of its dial list failed


PARTY_TRANSITIONS: dict[PartyState, frozenset[PartyState]] = {
    PartyState.ABSENT: frozenset({PartyState.DIALING}),
    PartyState.WAITING: frozenset({PartyState.DIALING, PartyState.LEFT}),
    PartyState.DIALING: frozenset({PartyState.CONNECTED, PartyState.UNREACHABLE, PartyState.LEFT}),
    PartyState.CONNECTED: frozenset({PartyState.LEFT}),
    PartyState.LEFT: frozenset({PartyState.DIALING}),
    PartyState.UNREACHABLE: frozenset({PartyState.DIALING}),
}


@dataclass(frozen=True, slots=True)
class ExistingLeg:
    """A party that is already on an answered call (an inbound caller, the seat that took it)."""

    leg_id: str
    number: str


@dataclass(frozen=True, slots=True)
class PartySnapshot:
    """A party as the API shows it."""

    role: Role
    state: PartyState
    number: str | None
    leg_id: str | None
    muted: bool
    held: bool
    attempts: tuple[Attempt, ...]
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None


class Party:
    """A party's state and the dialers that tried to reach it (one per (re)dial)."""

    def __init__(self, flow_id: str, role: Role, ids: LegIds, ring_timeout_s: float) -> None:
        self.flow_id = flow_id
        self.role = role
        self.state = PartyState.ABSENT
        self.numbers: tuple[str, ...] = ()
        self.number: str | None = None
        self.leg_id: str | None = None
        self.muted = False
        self.held = False
        self.connected_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.end_reason: str | None = None
        self.dialer: SequentialDialer | None = None
        self._old_dialers: list[SequentialDialer] = []
        self._ids = ids
        self._ring_timeout_s = ring_timeout_s
        self._existing_legs: set[str] = set()

    def _set_state(self, new: PartyState) -> None:
        if new not in PARTY_TRANSITIONS[self.state]:
            raise IllegalTransitionError(
                f"party cannot go from {self.state.value} to {new.value}",
                flow_id=self.flow_id,
                party=self.role.value,
                state=self.state.value,
            )
        log.info(
            "bridge %s %s - %s -> %s", self.flow_id, self.role.value, self.state.name, new.name
        )
        self.state = new

    def plan(self, numbers: Sequence[str]) -> None:
        """Give the party its dial list; it waits for its stage."""
        self.numbers = tuple(numbers)
        self.state = PartyState.WAITING

    def adopt(self, leg: ExistingLeg, now: datetime) -> None:
        """Start as connected on an existing answered leg."""
        self.numbers = (leg.number,)
        self.number = leg.number
        self.leg_id = leg.leg_id
        self._existing_legs.add(leg.leg_id)
        self.connected_at = now
        self.state = PartyState.CONNECTED

    def owns(self, leg_id: str) -> bool:
        """True if the leg belongs to this party (now or in the past)."""
        dialers = [*self._old_dialers, *([self.dialer] if self.dialer else [])]
        return leg_id in self._existing_legs or any(d.owns(leg_id) for d in dialers)

    def dial(self, now: datetime, numbers: Sequence[str] | None = None) -> list[Command]:
        """Start (or restart) dialling from the top of the dial list."""
        if numbers is not None:
            self.numbers = tuple(numbers)
        if self.dialer is not None:
            self._old_dialers.append(self.dialer)
        self._set_state(PartyState.DIALING)
        self.muted = self.held = False
        self.leg_id = self.number = self.ended_at = self.end_reason = None
        self.connected_at = None
        self.dialer = SequentialDialer(
            self.role.value, self.numbers, self._ring_timeout_s, self._ids
        )
        return self.dialer.start(now)

    def after_dial_event(self, now: datetime) -> None:
        """Update the state after the dialer handled an event (answer or exhaustion)."""
        if self.state is not PartyState.DIALING or self.dialer is None:
            return
        if self.dialer.status is DialerStatus.ANSWERED:
            self.leg_id = self.dialer.answered_leg
            self.number = self.dialer.attempts[-1].number
            self.connected_at = now
            self._set_state(PartyState.CONNECTED)
        elif self.dialer.status is DialerStatus.EXHAUSTED:
            last = self.dialer.attempts[-1]
            self.ended_at = now
            self.end_reason = last.result
            self._set_state(PartyState.UNREACHABLE)

    def leave(self, reason: str, now: datetime) -> list[Command]:
        """The party leaves: hang up its call or stop dialling it. Returns the commands."""
        cmds: list[Command] = []
        if self.state is PartyState.CONNECTED and self.leg_id is not None:
            cmds.append(Hangup(self.leg_id))
        elif self.state is PartyState.DIALING and self.dialer is not None:
            cmds += self.dialer.cancel(now)
        self.ended_at = now
        self.end_reason = reason
        self.muted = self.held = False
        self._set_state(PartyState.LEFT)
        return cmds

    def remote_left(self, reason: str, now: datetime) -> None:
        """The connected leg was hung up by the far end (or failed)."""
        self.ended_at = now
        self.end_reason = reason
        self.muted = self.held = False
        self._set_state(PartyState.LEFT)

    # -- the dispatcher's requests (each refuses with PartyStateError when it does not fit) --
    def _refuse(self, what: str) -> PartyStateError:
        return PartyStateError(
            f"cannot {what} a party that is {self.state.value}",
            flow_id=self.flow_id,
            party=self.role.value,
            state=self.state.value,
        )

    def drop(self, now: datetime) -> list[Command]:
        """The dispatcher hangs this party up (or stops dialling it)."""
        if self.state not in (PartyState.CONNECTED, PartyState.DIALING, PartyState.WAITING):
            raise self._refuse("hang up")
        cmds = self.leave("dropped", now)
        return [*cmds, Notify(self.flow_id, "party.left", self.role.value, "dropped")]

    def redial(self, now: datetime) -> list[Command]:
        """Dial a party that left or was unreachable again, from the top of its list."""
        if self.state not in (PartyState.LEFT, PartyState.UNREACHABLE):
            raise self._refuse("redial")
        return [*self.dial(now), Notify(self.flow_id, "party.dialing", self.role.value)]

    def add(self, numbers: Sequence[str], now: datetime) -> list[Command]:
        """Bring the party in with a new dial list (a unit added to an inbound call)."""
        if self.state not in (PartyState.ABSENT, PartyState.LEFT, PartyState.UNREACHABLE):
            raise self._refuse("add")
        return [*self.dial(now, numbers), Notify(self.flow_id, "party.dialing", self.role.value)]

    def _connected_leg(self, what: str) -> str:
        if self.state is not PartyState.CONNECTED or self.leg_id is None:
            raise self._refuse(what)
        return self.leg_id

    def set_muted(self, mute: bool) -> list[Command]:
        """Mute or unmute (a no-op when already so): the others stop or start hearing it."""
        leg_id = self._connected_leg("mute" if mute else "unmute")
        if self.muted == mute:
            return []
        self.muted = mute
        cmd: Command = Mute(leg_id) if mute else Unmute(leg_id)
        topic = "party.muted" if mute else "party.unmuted"
        return [cmd, Notify(self.flow_id, topic, self.role.value)]

    def set_held(self, hold: bool) -> list[Command]:
        """Put on hold or take off hold (a no-op when already so)."""
        leg_id = self._connected_leg("hold" if hold else "unhold")
        if self.held == hold:
            return []
        self.held = hold
        cmd: Command = Hold(leg_id) if hold else Unhold(leg_id)
        topic = "party.held" if hold else "party.unheld"
        return [cmd, Notify(self.flow_id, topic, self.role.value)]

    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt of every (re)dial, oldest first."""
        dialers = [*self._old_dialers, *([self.dialer] if self.dialer else [])]
        return tuple(a for d in dialers for a in d.attempts)

    def snapshot(self) -> PartySnapshot:
        """The party as the API shows it."""
        return PartySnapshot(
            role=self.role,
            state=self.state,
            number=self.number or (self.numbers[0] if self.numbers else None),
            leg_id=self.leg_id,
            muted=self.muted,
            held=self.held,
            attempts=self.attempts(),
            connected_at=self.connected_at,
            ended_at=self.ended_at,
            end_reason=self.end_reason,
        )
