"""Dialling one party: a dial list tried in order, or several numbers rung at once.

Both dialers are small sans-IO machines owned by a flow. They record every attempt (number,
result, SIP status, start and end times from the injected `now`) and tell the flow when the
party answered or when nobody could be reached.

Escalation rule (sequential): busy, declined, not found, unreachable, timeout, failed, an
unexpected cancel or no answer within the ring timeout move on to the next number.
`auth_failed` does not: our own credentials are wrong and every further number would fail
the same way, so the party is reported unreachable at once.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from callflows.commands import CancelDial, CancelTimer, Command, Dial, Hangup, StartTimer
from callflows.destination import Destination, as_destination
from callflows.errors import CallflowConfigError
from callflows.events import EndReason

log = logging.getLogger(__name__)

NO_ANSWER = "no_answer"  # attempt result when our ring timer expired
ANSWERED = "answered"
CANCELLED = "cancelled"  # attempt result when the flow stopped dialling (party dropped, ...)
ANSWERED_ELSEWHERE = "answered_elsewhere"  # parallel ringing: another number won
NOT_CONFIRMED = "not_confirmed"  # answered, but nobody pressed the key that takes the call
EXTENSION_FAILED = "extension_failed"  # answered, but the extension digits could not be sent
STOP_ESCALATION = frozenset({EndReason.AUTH_FAILED.value})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call placed to one number, and how it went (`result` None while it is ringing).

    `extension`: the digits keyed in after the answer, `extension_sent_at` when they went out;
    `confirmed_at`: when the person who answered pressed the key that takes the call."""

    number: str
    leg_id: str
    started_at: datetime
    result: str | None = None
    sip_status: int | None = None
    ended_at: datetime | None = None
    rang: bool = False
    extension: str | None = None
    extension_sent_at: datetime | None = None
    confirmed_at: datetime | None = None


class DialerStatus(enum.Enum):
    """Where a dialer is."""

    IDLE = "idle"
    DIALING = "dialing"
    ANSWERED = "answered"
    EXHAUSTED = "exhausted"
    CANCELLED = "cancelled"


class LegIds:
    """Deterministic leg ids per flow: "unit-1", "unit-2", "dispatcher-1", ..."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def new(self, role: str) -> str:
        """The next id for `role`."""
        n = self._counts.get(role, 0) + 1
        self._counts[role] = n
        return f"{role}-{n}"


def ring_timer_id(leg_id: str) -> str:
    """The id of the ring timer guarding an outbound leg."""
    return f"ring:{leg_id}"


class _Dialer:
    """Shared bookkeeping: attempts, ringing legs, legs we gave up on."""

    def __init__(
        self,
        role: str,
        numbers: Sequence[str | Destination],
        ring_timeout_s: float,
        ids: LegIds,
    ):
        if not numbers:
            raise CallflowConfigError(f"empty dial list for {role}")
        if ring_timeout_s <= 0:
            raise CallflowConfigError(f"ring timeout must be positive, got {ring_timeout_s}")
        self.role = role
        self.targets = tuple(as_destination(n) for n in numbers)
        self.numbers = tuple(t.number for t in self.targets)
        self.ring_timeout_s = ring_timeout_s
        self._ids = ids
        self._attempts: list[Attempt] = []
        self._ringing: set[str] = set()  # legs dialled and still waiting for an answer
        self._abandoned: set[str] = set()  # legs we cancelled: a late answer gets hung up
        self.status = DialerStatus.IDLE
        self.answered_leg: str | None = None

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt so far, oldest first."""
        return tuple(self._attempts)

    def owns(self, leg_id: str) -> bool:
        """True if this dialer created the leg (ringing, answered or abandoned)."""
        return any(a.leg_id == leg_id for a in self._attempts)

    def is_ringing(self, leg_id: str) -> bool:
        """True while the leg waits for an answer."""
        return leg_id in self._ringing

    def destination(self, leg_id: str) -> Destination:
        """What the leg dialled (number and extension)."""
        att = next(a for a in self._attempts if a.leg_id == leg_id)
        return Destination(att.number, att.extension)

    def annotate(self, leg_id: str, **changes: object) -> None:
        """Record a fact of an attempt (extension sent, confirmed)."""
        for i, att in enumerate(self._attempts):
            if att.leg_id == leg_id:
                self._attempts[i] = replace(att, **changes)  # type: ignore[arg-type]

    def _dial(self, target: Destination, now: datetime) -> list[Command]:
        leg_id = self._ids.new(self.role)
        attempt = Attempt(target.number, leg_id, now, extension=target.extension)
        self._attempts.append(attempt)
        self._ringing.add(leg_id)
        return [
            Dial(leg_id, self.role, target.number, self.ring_timeout_s),
            StartTimer(ring_timer_id(leg_id), self.ring_timeout_s),
        ]

    def _close(self, leg_id: str, result: str, sip_status: int | None, now: datetime) -> None:
        for i, att in enumerate(self._attempts):
            if att.leg_id == leg_id and att.result is None:
                self._attempts[i] = replace(att, result=result, sip_status=sip_status, ended_at=now)
        self._ringing.discard(leg_id)

    def _abandon(self, leg_id: str, result: str, now: datetime) -> list[Command]:
        self._close(leg_id, result, None, now)
        self._abandoned.add(leg_id)
        return [CancelTimer(ring_timer_id(leg_id)), CancelDial(leg_id)]

    def on_ringing(self, leg_id: str) -> None:
        """The leg is alerting: noted in its attempt."""
        for i, att in enumerate(self._attempts):
            if att.leg_id == leg_id and att.result is None:
                self._attempts[i] = replace(att, rang=True)

    def late_answer(self, leg_id: str) -> list[Command]:
        """An answer on a leg we already gave up on: hang it up."""
        log.info("- late answer on abandoned leg %s: hanging up", leg_id)
        return [Hangup(leg_id)]

    def cancel(self, now: datetime) -> list[Command]:
        """Stop dialling: cancel every ringing leg, record the attempts as cancelled."""
        cmds: list[Command] = []
        for leg_id in sorted(self._ringing):
            cmds += self._abandon(leg_id, CANCELLED, now)
        if self.status in (DialerStatus.DIALING, DialerStatus.IDLE):
            self.status = DialerStatus.CANCELLED
        return cmds


class SequentialDialer(_Dialer):
    """Try the numbers one after another until one answers (a unit's dial list)."""

    def start(self, now: datetime) -> list[Command]:
        """Dial the first number."""
        self.status = DialerStatus.DIALING
        self._index = 0
        return self._dial(self.targets[0], now)

    def on_answered(self, leg_id: str, now: datetime) -> list[Command]:
        """An answer: the party is reached (or a late answer on an abandoned leg)."""
        if leg_id not in self._ringing:
            return self.late_answer(leg_id) if leg_id in self._abandoned else []
        self._close(leg_id, ANSWERED, 200, now)
        self.status = DialerStatus.ANSWERED
        self.answered_leg = leg_id
        return [CancelTimer(ring_timer_id(leg_id))]

    def on_ended(
        self, leg_id: str, reason: str, sip_status: int | None, now: datetime
    ) -> list[Command]:
        """The ringing leg failed: record why and move on (or give up)."""
        if leg_id not in self._ringing:
            return []
        self._close(leg_id, reason, sip_status, now)
        cmds: list[Command] = [CancelTimer(ring_timer_id(leg_id))]
        if reason in STOP_ESCALATION:
            self.status = DialerStatus.EXHAUSTED
            return cmds
        return cmds + self._next(now)

    def on_timer(self, timer_id: str, now: datetime) -> list[Command] | None:
        """A ring timeout: cancel and move on. None if the timer is not one of ours."""
        for leg_id in list(self._ringing):
            if timer_id == ring_timer_id(leg_id):
                cmds = self._abandon(leg_id, NO_ANSWER, now)
                return cmds[1:] + self._next(now)  # the timer itself already fired
        return None

    def reject_answer(self, leg_id: str, result: str, now: datetime) -> list[Command]:
        """The answered leg did not take the call (`not_confirmed`, ...): record why and dial
        the next number (or give up). The caller hangs the leg up."""
        for i, att in enumerate(self._attempts):
            if att.leg_id == leg_id:
                self._attempts[i] = replace(att, result=result, ended_at=now)
        self.answered_leg = None
        self.status = DialerStatus.DIALING
        return self._next(now)

    def _next(self, now: datetime) -> list[Command]:
        self._index += 1
        if self._index >= len(self.targets):
            self.status = DialerStatus.EXHAUSTED
            return []
        return self._dial(self.targets[self._index], now)


class ParallelDialer(_Dialer):
    """Ring every number at once; the first to answer wins, the others are cancelled."""

    def start(self, now: datetime) -> list[Command]:
        """Dial every number."""
        self.status = DialerStatus.DIALING
        cmds: list[Command] = []
        for target in self.targets:
            cmds += self._dial(target, now)
        return cmds

    def on_answered(self, leg_id: str, now: datetime) -> list[Command]:
        """The first answer wins; the other legs are cancelled."""
        if leg_id not in self._ringing:
            return self.late_answer(leg_id) if leg_id in self._abandoned else []
        self._close(leg_id, ANSWERED, 200, now)
        self.status = DialerStatus.ANSWERED
        self.answered_leg = leg_id
        cmds: list[Command] = [CancelTimer(ring_timer_id(leg_id))]
        for other in sorted(self._ringing):
            cmds += self._abandon(other, ANSWERED_ELSEWHERE, now)
        return cmds

    def on_ended(
        self, leg_id: str, reason: str, sip_status: int | None, now: datetime
    ) -> list[Command]:
        """One number failed; when none is left ringing, the dialer is exhausted."""
        if leg_id not in self._ringing:
            return []
        self._close(leg_id, reason, sip_status, now)
        if not self._ringing:
            self.status = DialerStatus.EXHAUSTED
        return [CancelTimer(ring_timer_id(leg_id))]

    def on_timer(self, timer_id: str, now: datetime) -> list[Command] | None:
        """A ring timeout on one number; None if the timer is not one of ours."""
        for leg_id in list(self._ringing):
            if timer_id == ring_timer_id(leg_id):
                cmds = self._abandon(leg_id, NO_ANSWER, now)[1:]
                if not self._ringing:
                    self.status = DialerStatus.EXHAUSTED
                return cmds
        return None
