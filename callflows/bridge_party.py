"""One party of a bridge (caller, dispatcher or a unit): its dial list, legs and state.

Party states and their legal transitions (the one table, `PARTY_TRANSITIONS`)::

    ABSENT ──AddUnit / AddParty──▶ DIALING ──answer──▶ CONNECTED ──hang-up / drop──▶ LEFT
    DIALING ──a unit answers──▶ CONFIRMING ──key 1──▶ CONNECTED
    CONFIRMING ──not confirmed, numbers left──▶ DIALING (next number)
    CONFIRMING ──not confirmed, list exhausted──▶ UNREACHABLE
    WAITING ─stage─▶ DIALING ──list exhausted──▶ UNREACHABLE
    DIALING, CONFIRMING ──drop / bridge over──▶ LEFT   LEFT, UNREACHABLE ──redial──▶ DIALING
    WAITING ──bridge over / drop──▶ LEFT

A unit's answer is checked (`callflows.unit_answer`) when its rules ask for it: extension
digits keyed in, a key to press. Caller and dispatcher join as soon as they answer.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from callflows.commands import Command, Hangup, Hold, Mute, Notify, StopPlayback, Unhold, Unmute
from callflows.destination import Destination, as_destination
from callflows.dialing import CANCELLED, Attempt, DialerStatus, LegIds, SequentialDialer
from callflows.errors import IllegalTransitionError, PartyStateError
from callflows.events import DigitsSent, DtmfReceived, Event, PlaybackFinished, Role
from callflows.unit_answer import AnswerCheck, CheckPhase, UnitAnswerRules

log = logging.getLogger(__name__)


class PartyState(enum.Enum):
    """Where a party of a bridge is."""

    ABSENT = "absent"  # not in the bridge (yet): the unit of an inbound call before AddUnit
    WAITING = "waiting"  # its dial stage has not come yet
    DIALING = "dialing"
    CONFIRMING = "confirming"  # a unit answered: extension and key press before it joins
    CONNECTED = "connected"  # answered and joined to the conference
    LEFT = "left"  # hung up, dropped, or stopped being dialled
    UNREACHABLE = "unreachable"  # every number of its dial list failed


PARTY_TRANSITIONS: dict[PartyState, frozenset[PartyState]] = {
    PartyState.ABSENT: frozenset({PartyState.DIALING}),
    PartyState.WAITING: frozenset({PartyState.DIALING, PartyState.LEFT}),
    PartyState.DIALING: frozenset(
        {PartyState.CONNECTED, PartyState.CONFIRMING, PartyState.UNREACHABLE, PartyState.LEFT}
    ),
    PartyState.CONFIRMING: frozenset(
        {PartyState.CONNECTED, PartyState.DIALING, PartyState.UNREACHABLE, PartyState.LEFT}
    ),
    PartyState.CONNECTED: frozenset({PartyState.LEFT}),
    PartyState.LEFT: frozenset({PartyState.DIALING}),
    PartyState.UNREACHABLE: frozenset({PartyState.DIALING}),
}


LIVE_STATES = frozenset(
    {PartyState.WAITING, PartyState.DIALING, PartyState.CONFIRMING, PartyState.CONNECTED}
)
"""A party in one of these is still in the bridge (or on its way in)."""


@dataclass(frozen=True, slots=True)
class ExistingLeg:
    """A party that is already on an answered call (an inbound caller, the seat that took it)."""

    leg_id: str
    number: str
    connected_at: datetime | None = (
        None  # when it first connected (a call carried on after a crash)
    )


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
    """A party's state and the dialers that tried to reach it (one per (re)dial).

    `answer_rules` (units only) say how an answer is checked before the party joins."""

    def __init__(
        self,
        flow_id: str,
        role: Role,
        ids: LegIds,
        ring_timeout_s: float,
        answer_rules: UnitAnswerRules | None = None,
    ) -> None:
        self.flow_id = flow_id
        self.role = role
        self.state = PartyState.ABSENT
        self.answer_rules = answer_rules
        self.check: AnswerCheck | None = None
        self.replacing = False  # dialled in place of a unit that was connected: bridge holds
        self.numbers: tuple[Destination, ...] = ()
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

    def plan(self, numbers: Sequence[str | Destination]) -> None:
        """Give the party its dial list; it waits for its stage."""
        self.numbers = tuple(as_destination(n) for n in numbers)
        self.state = PartyState.WAITING

    def adopt(self, leg: ExistingLeg, now: datetime) -> None:
        """Start as connected on an existing answered leg."""
        self.numbers = (Destination(leg.number),)
        self.number = leg.number
        self.leg_id = leg.leg_id
        self._existing_legs.add(leg.leg_id)
        self.connected_at = leg.connected_at or now
        self.state = PartyState.CONNECTED

    def owns(self, leg_id: str) -> bool:
        """True if the leg belongs to this party (now or in the past)."""
        dialers = [*self._old_dialers, *([self.dialer] if self.dialer else [])]
        return leg_id in self._existing_legs or any(d.owns(leg_id) for d in dialers)

    def dial(
        self, now: datetime, numbers: Sequence[str | Destination] | None = None
    ) -> list[Command]:
        """Start (or restart) dialling from the top of the dial list."""
        if numbers is not None:
            self.numbers = tuple(as_destination(n) for n in numbers)
        if self.dialer is not None:
            self._old_dialers.append(self.dialer)
        self._set_state(PartyState.DIALING)
        self.muted = self.held = False
        self.leg_id = self.number = self.ended_at = self.end_reason = None
        self.connected_at = None
        self.check = None
        self.dialer = SequentialDialer(
            self.role.value, self.numbers, self._ring_timeout_s, self._ids
        )
        return self.dialer.start(now)

    def after_dial_event(self, now: datetime) -> list[Command]:
        """Update the state after the dialer handled an event (answer or exhaustion); an answer
        that must be checked first starts the check (its commands are returned)."""
        if self.state is not PartyState.DIALING or self.dialer is None:
            return []
        if self.dialer.status is DialerStatus.ANSWERED:
            leg_id = self.dialer.answered_leg
            assert leg_id is not None
            self.leg_id = leg_id
            target = self.dialer.destination(leg_id)
            self.number = target.number
            rules = self.answer_rules
            if rules is not None and rules.needs_check(target.extension):
                self.check = AnswerCheck(self.flow_id, leg_id, target.extension, rules)
                self._set_state(PartyState.CONFIRMING)
                return self._after_check(self.check.start(now), now)
            self._connected(now)
        elif self.dialer.status is DialerStatus.EXHAUSTED:
            last = self.dialer.attempts[-1]
            self.ended_at = now
            self.end_reason = last.result
            self.replacing = False
            self._set_state(PartyState.UNREACHABLE)
        return []

    def _connected(self, now: datetime) -> None:
        self.connected_at = now
        self.replacing = False
        self._set_state(PartyState.CONNECTED)

    # -- the answer check of a unit (CONFIRMING) --
    def on_check_event(self, event: Event, now: datetime) -> list[Command]:
        """A digit, a prompt end or the digits sent on the leg being checked."""
        check = self.check
        if self.state is not PartyState.CONFIRMING or check is None:
            return []
        match event:
            case DtmfReceived(digit=digit):
                cmds = check.on_key(digit, now)
            case PlaybackFinished(prompt=prompt):
                cmds = check.on_playback_end(prompt, now)
            case DigitsSent(ok=ok):
                cmds = check.on_digits_sent(ok, now)
            case _:
                return []
        return self._after_check(cmds, now)

    def on_check_timer(self, timer_id: str, now: datetime) -> list[Command] | None:
        """A timer of the check; None if it is not this party's."""
        if self.state is not PartyState.CONFIRMING or self.check is None:
            return None
        cmds = self.check.on_timer(timer_id, now)
        return None if cmds is None else self._after_check(cmds, now)

    def check_leg_ended(self, now: datetime) -> list[Command]:
        """The leg being checked hung up before it was confirmed: next number."""
        assert self.check is not None
        cmds = self.check.cancel()
        self.leg_id = None  # gone: nothing to hang up
        return self._after_check(cmds, now)

    def _after_check(self, cmds: list[Command], now: datetime) -> list[Command]:
        check, dialer = self.check, self.dialer
        assert check is not None and dialer is not None
        dialer.annotate(
            check.leg_id,
            extension_sent_at=check.extension_sent_at,
            confirmed_at=check.confirmed_at,
        )
        if check.phase is CheckPhase.PASSED:
            self._connected(now)
        elif check.phase is CheckPhase.FAILED:
            leg_id, self.leg_id = self.leg_id, None
            if leg_id is not None:
                cmds.append(Hangup(leg_id))
            cmds += dialer.reject_answer(check.leg_id, check.result or "not_confirmed", now)
            self.number = None
            self._set_state(PartyState.DIALING)
            cmds += self.after_dial_event(now)
        return cmds

    def leave(self, reason: str, now: datetime) -> list[Command]:
        """The party leaves: hang up its call or stop dialling it. Returns the commands."""
        cmds: list[Command] = []
        if self.state is PartyState.CONNECTED and self.leg_id is not None:
            cmds.append(Hangup(self.leg_id))
        elif self.state is PartyState.CONFIRMING and self.check is not None:
            cmds += self._stop_check(now)
        elif self.state is PartyState.DIALING and self.dialer is not None:
            cmds += self.dialer.cancel(now)
        self.ended_at = now
        self.end_reason = reason
        self.muted = self.held = False
        self.replacing = False
        self._set_state(PartyState.LEFT)
        return cmds

    def _stop_check(self, now: datetime) -> list[Command]:
        assert self.check is not None and self.dialer is not None
        leg_id = self.check.leg_id
        cmds = [*self.check.cancel(), StopPlayback(leg_id), Hangup(leg_id)]
        self.dialer.annotate(leg_id, result=CANCELLED, ended_at=now)
        return cmds

    def remote_left(self, reason: str, now: datetime) -> None:
        """The connected leg was hung up by the far end (or failed)."""
        self.replacing = False
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
        if self.state not in LIVE_STATES:
            raise self._refuse("hang up")
        cmds = self.leave("dropped", now)
        return [*cmds, Notify(self.flow_id, "party.left", self.role.value, "dropped")]

    def redial(self, now: datetime) -> list[Command]:
        """Dial a party that left or was unreachable again, from the top of its list."""
        if self.state not in (PartyState.LEFT, PartyState.UNREACHABLE):
            raise self._refuse("redial")
        return [*self.dial(now), Notify(self.flow_id, "party.dialing", self.role.value)]

    def add(self, numbers: Sequence[str | Destination], now: datetime) -> list[Command]:
        """Bring the party in with a new dial list (a unit added to an inbound call)."""
        if self.state not in (PartyState.ABSENT, PartyState.LEFT, PartyState.UNREACHABLE):
            raise self._refuse("add")
        return [*self.dial(now, numbers), Notify(self.flow_id, "party.dialing", self.role.value)]

    def replace(self, numbers: Sequence[str | Destination], now: datetime) -> list[Command]:
        """Hang up this unit (or stop dialling it) and dial another unit in its place."""
        if not self.role.is_unit or self.state is PartyState.ABSENT:
            raise self._refuse("replace")
        was_connected = self.state is PartyState.CONNECTED
        cmds = self.leave("replaced", now) if self.state in LIVE_STATES else []
        cmds += self.dial(now, numbers)
        self.replacing = was_connected
        return [*cmds, Notify(self.flow_id, "party.replaced", self.role.value)]

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
            number=self.number or (self.numbers[0].number if self.numbers else None),
            leg_id=self.leg_id,
            muted=self.muted,
            held=self.held,
            attempts=self.attempts(),
            connected_at=self.connected_at,
            ended_at=self.ended_at,
            end_reason=self.end_reason,
        )
