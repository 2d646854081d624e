"""An inbound call to the service: ring every dispatcher seat at once, first to answer wins.

States and legal transitions (`INBOUND_TRANSITIONS`)::

    RINGING ──a seat answers──▶ CONNECTED ──either side hangs up / EndBridge──▶ ENDED
    RINGING ──no seat in time──▶ [ANNOUNCING ──prompt done / prompt limit──▶] UNANSWERED
    RINGING ──caller gives up──▶ ENDED                 CONNECTED ──to_bridge()──▶ HANDED_OVER

The caller's leg is ringing when the flow starts (the runner received the INVITE and sent
180). When a seat answers, the caller is answered, both legs are joined to the conference
`call_id` and the recording starts; the other seats are cancelled. When no seat answers within
`ring_deadline_s`, the configured `NoAnswerOutcome` applies: reject with a SIP status (default
480), or answer, play a prompt and hang up; the call ends "unanswered" with the stored reason.
The announcement is bounded by `NoAnswerOutcome.prompt_limit_s` (timer `announce`): a prompt
whose end is never reported does not keep the caller's line open.
To bring a unit in, the runner calls `to_bridge()` and routes further events to the returned
`BridgeFlow` (same conference, recording kept running), then feeds it `AddUnit`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from callflows import commands as c
from callflows.bridge import BridgeFlow, BridgeSettings
from callflows.bridge_party import ExistingLeg
from callflows.dialing import Attempt, DialerStatus, LegIds, ParallelDialer
from callflows.errors import (
    CallflowConfigError,
    FlowFinishedError,
    IllegalTransitionError,
    PartyStateError,
    UnknownLegError,
)
from callflows.events import (
    EndBridge,
    Event,
    LegAnswered,
    LegEnded,
    PlaybackFinished,
    Role,
    TimerFired,
)

log = logging.getLogger(__name__)

ANNOUNCE_TIMER = "announce"  # bounds the no-answer announcement


class InboundState(enum.Enum):
    """Where an inbound call is."""

    RINGING = "ringing"
    CONNECTED = "connected"
    ANNOUNCING = "announcing"
    UNANSWERED = "unanswered"
    ENDED = "ended"
    HANDED_OVER = "handed_over"


INBOUND_TRANSITIONS: dict[InboundState, frozenset[InboundState]] = {
    InboundState.RINGING: frozenset(
        {
            InboundState.CONNECTED,
            InboundState.ANNOUNCING,
            InboundState.UNANSWERED,
            InboundState.ENDED,
        }
    ),
    InboundState.ANNOUNCING: frozenset({InboundState.UNANSWERED}),
    InboundState.CONNECTED: frozenset({InboundState.ENDED, InboundState.HANDED_OVER}),
    InboundState.UNANSWERED: frozenset(),
    InboundState.ENDED: frozenset(),
    InboundState.HANDED_OVER: frozenset(),
}
FINAL = frozenset({InboundState.UNANSWERED, InboundState.ENDED, InboundState.HANDED_OVER})


@dataclass(frozen=True)
class NoAnswerOutcome:
    """What happens when no seat answers: reject with `sip_status`, or announce `prompt_key`
    (for at most `prompt_limit_s`, then the caller is hung up all the same)."""

    reason: str = "no_dispatcher_answered"
    sip_status: int = 480
    prompt_key: str | None = None
    prompt_limit_s: float = 60.0

    def __post_init__(self) -> None:
        if self.prompt_limit_s <= 0:
            raise CallflowConfigError("the announcement's limit must be positive")


@dataclass(frozen=True)
class InboundSettings:
    """How long the seats ring, and what happens then."""

    ring_deadline_s: float = 30.0
    no_answer: NoAnswerOutcome = field(default_factory=NoAnswerOutcome)


@dataclass(frozen=True, slots=True)
class InboundSnapshot:
    """An inbound call as stored."""

    call_id: str
    state: InboundState
    caller_number: str
    seat_attempts: tuple[Attempt, ...]
    seat_leg_id: str | None
    seat_number: str | None
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None


class InboundFlow:
    """An inbound call ringing the dispatcher seats `seats` (numbers or extensions) at once."""

    def __init__(
        self,
        call_id: str,
        caller_leg_id: str,
        caller_number: str,
        seats: Sequence[str],
        settings: InboundSettings | None = None,
    ) -> None:
        if not seats:
            raise CallflowConfigError(f"inbound call {call_id}: no dispatcher seats configured")
        self.call_id = call_id
        self.caller_leg_id = caller_leg_id
        self.caller_number = caller_number
        self.settings = settings or InboundSettings()
        self.state = InboundState.RINGING
        self.seats = ParallelDialer("seat", seats, self.settings.ring_deadline_s, LegIds())
        self.connected_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.end_reason: str | None = None
        self._last_saved: InboundSnapshot | None = None

    @property
    def flow_id(self) -> str:
        """The inbound call's id (also its conference id)."""
        return self.call_id

    @property
    def finished(self) -> bool:
        """True once unanswered, ended or handed over to a bridge."""
        return self.state in FINAL

    def _set_state(self, new: InboundState) -> list[c.Command]:
        if new not in INBOUND_TRANSITIONS[self.state]:
            raise IllegalTransitionError(
                f"inbound call cannot go from {self.state.value} to {new.value}",
                flow_id=self.call_id,
                state=self.state.value,
            )
        log.info("inbound %s - %s -> %s", self.call_id, self.state.name, new.name)
        self.state = new
        return [c.Notify(self.call_id, f"inbound.{new.value}", detail=self.end_reason)]

    def start(self, now: datetime) -> list[c.Command]:
        """Ring every seat."""
        return self._saved(self.seats.start(now))

    def handle(self, event: Event, now: datetime) -> list[c.Command]:
        """Feed one event; returns the commands to execute in order."""
        match event:
            case TimerFired(timer_id=timer_id):
                cmds = self._on_timer(timer_id, now)
            case EndBridge():
                cmds = self._end_by_request(now)
            case LegAnswered() | LegEnded() | PlaybackFinished():
                cmds = self._on_leg(event, now)
            case _ if hasattr(event, "leg_id"):
                self._check_leg(getattr(event, "leg_id"))  # noqa: B009
                cmds = []  # ringing, DTMF: nothing to do
            case _:
                raise PartyStateError(
                    f"{type(event).__name__} needs a bridge: call to_bridge() first",
                    flow_id=self.call_id,
                    state=self.state.value,
                )
        return self._saved(cmds)

    def _check_leg(self, leg_id: str) -> None:
        if leg_id != self.caller_leg_id and not self.seats.owns(leg_id):
            raise UnknownLegError(f"unknown leg {leg_id!r}", flow_id=self.call_id, party=leg_id)

    def _on_leg(
        self, event: LegAnswered | LegEnded | PlaybackFinished, now: datetime
    ) -> list[c.Command]:
        self._check_leg(event.leg_id)
        if isinstance(event, PlaybackFinished):
            if self.state is InboundState.ANNOUNCING and event.leg_id == self.caller_leg_id:
                return self._announced(now)
            return []
        if event.leg_id == self.caller_leg_id:
            return self._caller_event(event, now)
        if isinstance(event, LegAnswered):
            return self._seat_answered(event.leg_id, now)
        return self._seat_ended(event, now)

    def _caller_event(self, event: LegAnswered | LegEnded, now: datetime) -> list[c.Command]:
        if isinstance(event, LegAnswered) or self.finished:
            return []
        if self.state is InboundState.RINGING:
            return self.seats.cancel(now) + self._end(InboundState.ENDED, "caller_abandoned", now)
        if self.state is InboundState.ANNOUNCING:
            cmds: list[c.Command] = [c.CancelTimer(ANNOUNCE_TIMER)]
            return cmds + self._end(InboundState.UNANSWERED, self.settings.no_answer.reason, now)
        seat = self.seats.answered_leg
        hangup: list[c.Command] = [c.Hangup(seat)] if seat else []
        return hangup + self._end(InboundState.ENDED, "caller_hung_up", now)

    def _seat_answered(self, leg_id: str, now: datetime) -> list[c.Command]:
        if self.state is not InboundState.RINGING or not self.seats.is_ringing(leg_id):
            return self.seats.late_answer(leg_id)
        cmds = self.seats.on_answered(leg_id, now)
        self.connected_at = now
        cmds += [
            c.Answer(self.caller_leg_id),
            c.Join(self.caller_leg_id, self.call_id),
            c.Join(leg_id, self.call_id),
            c.StartRecording(self.call_id),
        ]
        return cmds + self._set_state(InboundState.CONNECTED)

    def _seat_ended(self, event: LegEnded, now: datetime) -> list[c.Command]:
        if self.state is InboundState.RINGING and self.seats.is_ringing(event.leg_id):
            cmds = self.seats.on_ended(event.leg_id, event.reason, event.sip_status, now)
            return cmds + self._after_seats(now)
        if self.state is InboundState.CONNECTED and event.leg_id == self.seats.answered_leg:
            hangup: list[c.Command] = [c.Hangup(self.caller_leg_id)]
            return hangup + self._end(InboundState.ENDED, "dispatcher_hung_up", now)
        return []

    def _on_timer(self, timer_id: str, now: datetime) -> list[c.Command]:
        if self.state is InboundState.ANNOUNCING and timer_id == ANNOUNCE_TIMER:
            log.warning("inbound %s: announcement not over in %.0f s, hanging up",
                        self.call_id, self.settings.no_answer.prompt_limit_s)  # fmt: skip
            return self._announced(now, timer_fired=True)
        if self.state is not InboundState.RINGING:
            return []
        cmds = self.seats.on_timer(timer_id, now)
        return [] if cmds is None else cmds + self._after_seats(now)

    def _after_seats(self, now: datetime) -> list[c.Command]:
        if self.seats.status is not DialerStatus.EXHAUSTED:
            return []
        outcome = self.settings.no_answer
        if outcome.prompt_key is None:
            cmds: list[c.Command] = [c.Reject(self.caller_leg_id, outcome.sip_status)]
            return cmds + self._end(InboundState.UNANSWERED, outcome.reason, now)
        cmds = [
            c.Answer(self.caller_leg_id),
            c.Play(self.caller_leg_id, outcome.prompt_key, False),
            c.StartTimer(ANNOUNCE_TIMER, outcome.prompt_limit_s),
        ]
        self.end_reason = outcome.reason
        return cmds + self._set_state(InboundState.ANNOUNCING)

    def _announced(self, now: datetime, *, timer_fired: bool = False) -> list[c.Command]:
        """The announcement is over (played, cut short by a request, or its limit passed):
        hang the caller up; the call ends unanswered with the no-answer reason."""
        cmds: list[c.Command] = [] if timer_fired else [c.CancelTimer(ANNOUNCE_TIMER)]
        cmds.append(c.Hangup(self.caller_leg_id))
        return cmds + self._end(InboundState.UNANSWERED, self.settings.no_answer.reason, now)

    def _end_by_request(self, now: datetime) -> list[c.Command]:
        if self.finished:
            raise FlowFinishedError(
                "inbound call is over", flow_id=self.call_id, state=self.state.value
            )
        if self.state is InboundState.CONNECTED:
            seat = self.seats.answered_leg
            cmds: list[c.Command] = [c.Hangup(self.caller_leg_id)]
            cmds += [c.Hangup(seat)] if seat else []
            return cmds + self._end(InboundState.ENDED, "ended_by_request", now)
        if self.state is InboundState.ANNOUNCING:
            return self._announced(now)
        cmds = [*self.seats.cancel(now), c.Reject(self.caller_leg_id, 480)]
        return cmds + self._end(InboundState.ENDED, "ended_by_request", now)

    def _end(self, state: InboundState, reason: str, now: datetime) -> list[c.Command]:
        self.ended_at = now
        self.end_reason = reason
        cmds: list[c.Command] = []
        if self.state is InboundState.CONNECTED:
            cmds.append(c.StopRecording(self.call_id))
        return cmds + self._set_state(state)

    def to_bridge(
        self, now: datetime, bridge_id: str | None = None, settings: BridgeSettings | None = None
    ) -> BridgeFlow:
        """Hand the connected call over to a bridge (caller + seat, unit to be added)."""
        seat = self.seats.answered_leg
        if self.state is not InboundState.CONNECTED or seat is None:
            raise PartyStateError(
                "only a connected inbound call can become a bridge",
                flow_id=self.call_id,
                state=self.state.value,
            )
        seat_number = self.seats.attempts[
            [a.leg_id for a in self.seats.attempts].index(seat)
        ].number
        parties = {
            Role.CALLER: ExistingLeg(self.caller_leg_id, self.caller_number),
            Role.DISPATCHER: ExistingLeg(seat, seat_number),
        }
        self._set_state(InboundState.HANDED_OVER)
        return BridgeFlow(
            bridge_id or self.call_id,
            parties,
            now,
            settings,
            conference_id=self.call_id,
            recording_active=True,
        )

    def snapshot(self) -> InboundSnapshot:
        """The call as stored."""
        seat = self.seats.answered_leg
        number = next((a.number for a in self.seats.attempts if a.leg_id == seat), None)
        return InboundSnapshot(
            call_id=self.call_id,
            state=self.state,
            caller_number=self.caller_number,
            seat_attempts=self.seats.attempts,
            seat_leg_id=seat,
            seat_number=number,
            connected_at=self.connected_at,
            ended_at=self.ended_at,
            end_reason=self.end_reason,
        )

    def _saved(self, cmds: list[c.Command]) -> list[c.Command]:
        snap = self.snapshot()
        if snap != self._last_saved:
            self._last_saved = snap
            cmds.append(c.Save(self.call_id, snap))
        return cmds
