"""The three-way bridge (三方通话) as a pure state machine: caller, dispatcher and unit.

Bridge states and legal transitions (`BRIDGE_TRANSITIONS`)::

    DIALING ──2 parties connected──▶ CONNECTED ──fewer than 2 left / EndBridge──▶ ENDED
    DIALING ──required party unreachable / deadline / fewer than 2 can connect──▶ FAILED
    DIALING ──EndBridge──▶ ENDED

Policies: parties are dialled stage by stage (`BridgeSettings.dial_stages`); the bridge is
connected once two parties are connected (each is joined to the conference as it connects, the
recording starts then). A unit connects only once its answer passed `BridgeSettings.unit_answer`
(extension digits keyed in, key 1 pressed: `callflows.unit_answer`); while it is checked the
others hear a short notice. More units can be added (`AddParty`: unit2, unit3, at most
`MAX_PARTIES` parties) and a unit replaced by another (`ReplaceUnit`). A party that leaves
does not end the bridge while two remain (the dispatcher can leave the caller with the unit);
under two, everyone left is hung up (a unit being replaced counts until it joins). A party
unreachable *after* the bridge connected does not fail it: the dispatcher is notified and may
redial. While dialing, the bridge fails when a required party (`BridgeSettings.required`,
default all three) is unreachable, when fewer than two parties can still connect, or when the
dial deadline passes.

Harmless late events are ignored (logged): anything for a leg that already ended, a ring or
deadline timer that was cancelled, DTMF and playback ends on bridge legs. A late *answer* on a
leg the bridge gave up on is hung up. Everything else that does not fit raises an `EventError`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from callflows.bridge_party import LIVE_STATES, ExistingLeg, Party, PartySnapshot, PartyState
from callflows.commands import (
    CancelTimer,
    Command,
    Join,
    Notify,
    Play,
    Save,
    StartRecording,
    StartTimer,
    StopPlayback,
    StopRecording,
)
from callflows.destination import Destination
from callflows.dialing import LegIds
from callflows.errors import (
    CallflowConfigError,
    FlowFinishedError,
    IllegalTransitionError,
    PartyStateError,
    UnknownLegError,
)
from callflows.events import (
    BASE_ROLES,
    EXTRA_UNITS,
    AddParty,
    AddUnit,
    DigitsSent,
    DtmfReceived,
    EndBridge,
    Event,
    HangupParty,
    HoldParty,
    LegAnswered,
    LegEnded,
    LegRinging,
    MuteParty,
    PlaybackFinished,
    RedialParty,
    ReplaceUnit,
    Role,
    TimerFired,
    UnholdParty,
    UnmuteParty,
)
from callflows.unit_answer import UnitAnswerRules

log = logging.getLogger(__name__)

DEADLINE_TIMER = "bridge-deadline"
MAX_PARTIES = 5  # caller, dispatcher and up to three units


class BridgeState(enum.Enum):
    """Where a bridge is (the API's `state`)."""

    DIALING = "dialing"
    CONNECTED = "connected"
    ENDED = "ended"
    FAILED = "failed"


BRIDGE_TRANSITIONS: dict[BridgeState, frozenset[BridgeState]] = {
    BridgeState.DIALING: frozenset({BridgeState.CONNECTED, BridgeState.FAILED, BridgeState.ENDED}),
    BridgeState.CONNECTED: frozenset({BridgeState.ENDED}),
    BridgeState.ENDED: frozenset(),
    BridgeState.FAILED: frozenset(),
}


def _default_ring_timeouts() -> dict[Role, float]:
    return {Role.DISPATCHER: 20.0, Role.CALLER: 40.0, Role.UNIT: 25.0}


@dataclass(frozen=True)
class BridgeSettings:
    """How a bridge dials. Default: the dispatcher's seat first, then caller and unit together."""

    dial_stages: tuple[tuple[Role, ...], ...] = ((Role.DISPATCHER,), (Role.CALLER, Role.UNIT))
    ring_timeouts_s: Mapping[Role, float] = field(default_factory=_default_ring_timeouts)
    dial_deadline_s: float = 180.0
    required: frozenset[Role] = frozenset(BASE_ROLES)
    unit_answer: UnitAnswerRules = field(default_factory=UnitAnswerRules)

    def __post_init__(self) -> None:
        roles = [r for stage in self.dial_stages for r in stage]
        if sorted(roles) != sorted(BASE_ROLES) or any(not s for s in self.dial_stages):
            raise CallflowConfigError(f"dial stages must name each role once: {self.dial_stages}")
        if self.dial_deadline_s <= 0:
            raise CallflowConfigError("dial deadline must be positive")

    @classmethod
    def all_at_once(cls, **kwargs: object) -> BridgeSettings:
        """Dial all three parties at the same time."""
        return cls(dial_stages=((Role.DISPATCHER, Role.CALLER, Role.UNIT),), **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class BridgeSnapshot:
    """The bridge as stored and shown by `GET /api/v1/bridges/{id}`."""

    bridge_id: str
    state: BridgeState
    parties: tuple[PartySnapshot, ...]
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    recording: bool

    def party(self, role: Role) -> PartySnapshot:
        """The snapshot of one party."""
        return next(p for p in self.parties if p.role is role)


class BridgeFlow:
    """A bridged call. Feed `start(now)` once, then `handle(event, now)` for every event.

    `parties` maps each role to its dial list (numbers in order: for the unit, on-duty staff,
    then leader, then fallback) or to an `ExistingLeg` already answered (an inbound caller and
    the seat that took it). A role left out is absent (the unit of an inbound call: `AddUnit`).
    `resumed_from` (created, first connected) is given for a call carried on after a crash: its
    parties are `ExistingLeg`s re-INVITEd by the new process, and the recording started when
    it connects again is the call's next segment.
    """

    def __init__(
        self,
        bridge_id: str,
        parties: Mapping[Role, Sequence[str | Destination] | ExistingLeg],
        now: datetime,
        settings: BridgeSettings | None = None,
        *,
        conference_id: str | None = None,
        recording_active: bool = False,
        resumed_from: tuple[datetime, datetime] | None = None,
    ) -> None:
        if len(parties) < 2:
            raise CallflowConfigError(f"bridge {bridge_id} needs at least two parties")
        self.settings = settings or BridgeSettings()
        self.bridge_id = bridge_id
        self.conference_id = conference_id or bridge_id
        self.state = BridgeState.DIALING
        # a call carried on after a crash keeps when it was created and first connected
        self.created_at = resumed_from[0] if resumed_from else now
        self.connected_at: datetime | None = resumed_from[1] if resumed_from else None
        self.ended_at: datetime | None = None
        self.end_reason: str | None = None
        self.recording = recording_active
        self._ids = LegIds()
        self.parties = {
            r: Party(
                bridge_id,
                r,
                self._ids,
                self._timeout(r),
                self.settings.unit_answer if r.is_unit else None,
            )
            for r in Role
        }
        for role, spec in parties.items():
            if isinstance(spec, ExistingLeg):
                self.parties[role].adopt(spec, now)
            else:
                self.parties[role].plan(spec)
        self._last_saved: BridgeSnapshot | None = None

    def _timeout(self, role: Role) -> float:
        timeouts = self.settings.ring_timeouts_s
        return timeouts.get(role) or timeouts.get(Role.UNIT if role.is_unit else role, 30.0)

    @property
    def flow_id(self) -> str:
        """The bridge id."""
        return self.bridge_id

    @property
    def finished(self) -> bool:
        """True once ended or failed."""
        return self.state in (BridgeState.ENDED, BridgeState.FAILED)

    def _set_state(self, new: BridgeState, now: datetime) -> list[Command]:
        if new not in BRIDGE_TRANSITIONS[self.state]:
            raise IllegalTransitionError(
                f"bridge cannot go from {self.state.value} to {new.value}",
                flow_id=self.bridge_id,
                state=self.state.value,
            )
        log.info("bridge %s - %s -> %s", self.bridge_id, self.state.name, new.name)
        self.state = new
        return [Notify(self.bridge_id, f"bridge.{new.value}", detail=self.end_reason)]

    # --- entry points -------------------------------------------------------------------------

    def start(self, now: datetime) -> list[Command]:
        """Join any existing legs, start the deadline and the first dial stage."""
        cmds: list[Command] = [StartTimer(DEADLINE_TIMER, self.settings.dial_deadline_s)]
        for party in self.parties.values():
            if party.state is PartyState.CONNECTED and party.leg_id is not None:
                cmds.append(Join(party.leg_id, self.conference_id))
        return self._finish_step(cmds, now)

    def handle(self, event: Event, now: datetime) -> list[Command]:
        """Feed one event; returns the commands to execute in order."""
        match event:
            case (
                LegRinging() | LegAnswered() | LegEnded() | DtmfReceived() | PlaybackFinished()
                | DigitsSent()
            ):  # fmt: skip
                cmds = self._on_leg_event(event, now)
            case TimerFired(timer_id=timer_id):
                cmds = self._on_timer(timer_id, now)
            case _:
                cmds = self._on_request(event, now)
        return self._finish_step(cmds, now)

    def _on_request(self, event: Event, now: datetime) -> list[Command]:
        """One dispatcher request (drop, redial, mute, hold, end, add a unit); the party refuses
        what does not fit its state (PartyStateError), a finished bridge refuses everything."""
        if self.finished:
            raise FlowFinishedError(
                f"bridge is {self.state.value}: cannot apply {type(event).__name__}",
                flow_id=self.bridge_id,
                party=getattr(event, "role", None),
                state=self.state.value,
            )
        match event:
            case EndBridge():
                return self.finish(BridgeState.ENDED, "ended_by_request", now)
            case HangupParty(role=role):
                return self.parties[role].drop(now)
            case RedialParty(role=role):
                return self.parties[role].redial(now)
            case AddUnit(numbers=numbers):
                return self.parties[Role.UNIT].add(numbers, now)
            case AddParty(numbers=numbers):
                return self._add_party(numbers, now)
            case ReplaceUnit(numbers=numbers, role=role):
                return self.parties[role].replace(numbers, now)
            case MuteParty(role=role) | UnmuteParty(role=role):
                return self.parties[role].set_muted(isinstance(event, MuteParty))
            case HoldParty(role=role) | UnholdParty(role=role):
                return self.parties[role].set_held(isinstance(event, HoldParty))
        raise TypeError(f"not a bridge event: {type(event).__name__}")  # no dial list in logs

    def snapshot(self) -> BridgeSnapshot:
        """The bridge as stored and shown by the API."""
        return BridgeSnapshot(
            bridge_id=self.bridge_id,
            state=self.state,
            parties=tuple(
                self.parties[r].snapshot()
                for r in Role
                if r in BASE_ROLES or self.parties[r].state is not PartyState.ABSENT
            ),
            created_at=self.created_at,
            connected_at=self.connected_at,
            ended_at=self.ended_at,
            end_reason=self.end_reason,
            recording=self.recording,
        )

    # --- leg events ---------------------------------------------------------------------------

    def party_of_leg(self, leg_id: str) -> Party:
        """The party that owns the leg, or UnknownLegError naming the bridge."""
        for party in self.parties.values():
            if party.owns(leg_id):
                return party
        raise UnknownLegError(
            f"unknown leg {leg_id!r}", flow_id=self.bridge_id, party=leg_id, state=self.state.value
        )

    def _add_party(self, numbers: Sequence[str | Destination], now: datetime) -> list[Command]:
        """One more unit: the first unit role not used yet, up to `MAX_PARTIES` parties."""
        used = sum(1 for p in self.parties.values() if p.state is not PartyState.ABSENT)
        free = [r for r in (Role.UNIT, *EXTRA_UNITS) if self.parties[r].state is PartyState.ABSENT]
        if used >= MAX_PARTIES or not free:
            raise PartyStateError(
                f"a bridge has at most {MAX_PARTIES} parties",
                flow_id=self.bridge_id,
                state=self.state.value,
            )
        return self.parties[free[0]].add(numbers, now)

    def _on_leg_event(self, event: Event, now: datetime) -> list[Command]:
        leg_id: str = getattr(event, "leg_id")  # noqa: B009 - every leg event has one
        party = self.party_of_leg(leg_id)
        before = party.state
        cmds = self._party_leg_event(party, leg_id, event, now)
        return cmds + self._party_changed(party, before)

    def _party_leg_event(
        self, party: Party, leg_id: str, event: Event, now: datetime
    ) -> list[Command]:
        dialer = party.dialer
        ringing = dialer is not None and dialer.is_ringing(leg_id)
        checking = party.state is PartyState.CONFIRMING and party.leg_id == leg_id
        match event:
            case LegRinging() if ringing and dialer is not None:
                dialer.on_ringing(leg_id)
                return []
            case LegAnswered() if ringing and dialer is not None and not self.finished:
                return dialer.on_answered(leg_id, now) + party.after_dial_event(now)
            case LegAnswered() if party.leg_id != leg_id or self.finished:
                return self._late_answer(party, leg_id, now)
            case LegEnded(reason=reason, sip_status=status) if ringing and dialer is not None:
                return dialer.on_ended(leg_id, reason, status, now) + party.after_dial_event(now)
            case LegEnded() if checking:
                return party.check_leg_ended(now)
            case LegEnded(reason=reason) if (
                party.leg_id == leg_id and party.state is PartyState.CONNECTED
            ):
                party.remote_left(reason, now)
                return [Notify(self.bridge_id, "party.left", party.role.value, reason)]
            case DtmfReceived() | PlaybackFinished() | DigitsSent() if checking:
                return party.on_check_event(event, now)
        log.debug("bridge %s: ignoring %s on leg %s", self.bridge_id, type(event).__name__, leg_id)
        return []

    def _party_changed(self, party: Party, before: PartyState) -> list[Command]:
        """What follows a party's change: join it once connected, tell the others to wait while
        a unit is being checked, note when it became unreachable."""
        role, state = party.role.value, party.state
        if state is before:
            return []
        if state is PartyState.CONNECTED and party.leg_id is not None:
            note = Notify(self.bridge_id, "party.connected", role)
            done = self._stop_waiting_prompts(party) if before is PartyState.CONFIRMING else []
            return [*done, Join(party.leg_id, self.conference_id), note]
        if state is PartyState.CONFIRMING:
            return [*self._waiting_prompts(party), Notify(self.bridge_id, "party.confirming", role)]
        if state is PartyState.UNREACHABLE:
            return [Notify(self.bridge_id, "party.unreachable", role, party.end_reason)]
        return []

    def _listeners(self, checked: Party) -> list[str]:
        return [
            p.leg_id
            for p in self.parties.values()
            if p is not checked
            and p.state is PartyState.CONNECTED
            and p.leg_id is not None
            and not p.held
        ]

    def _waiting_prompts(self, checked: Party) -> list[Command]:
        """The parties already talking hear that a unit is being connected (once)."""
        prompt = self.settings.unit_answer.waiting_prompt_key
        if prompt is None:
            return []
        return [Play(leg, prompt, False) for leg in self._listeners(checked)]

    def _stop_waiting_prompts(self, joined: Party) -> list[Command]:
        """The unit is here: the notice, if still playing, stops."""
        if self.settings.unit_answer.waiting_prompt_key is None:
            return []
        return [StopPlayback(leg) for leg in self._listeners(joined)]

    def _late_answer(self, party: Party, leg_id: str, now: datetime) -> list[Command]:
        if party.dialer is not None and party.dialer.is_ringing(leg_id):
            party.dialer.on_answered(leg_id, now)  # record it, then hang up: the bridge is over
        elif party.leg_id == leg_id:
            return []  # a repeated answer for the connected leg
        return party.dialer.late_answer(leg_id) if party.dialer else []

    def _on_timer(self, timer_id: str, now: datetime) -> list[Command]:
        if timer_id == DEADLINE_TIMER:
            if self.state is BridgeState.DIALING:
                return self.finish(BridgeState.FAILED, "deadline", now, timer_fired=True)
            return []
        for party in self.parties.values():
            before = party.state
            cmds: list[Command] | None = None
            if party.state is PartyState.DIALING and party.dialer is not None:
                cmds = party.dialer.on_timer(timer_id, now)
                if cmds is not None:
                    cmds += party.after_dial_event(now)
            elif party.state is PartyState.CONFIRMING:
                cmds = party.on_check_timer(timer_id, now)
            if cmds is not None:
                return cmds + self._party_changed(party, before)
        log.debug("bridge %s: ignoring stale timer %s", self.bridge_id, timer_id)
        return []

    # --- policies -----------------------------------------------------------------------------

    def _finish_step(self, cmds: list[Command], now: datetime) -> list[Command]:
        """Apply the bridge-wide policies after any change, then save if anything changed."""
        if not self.finished:
            cmds += self._evaluate(now)
        if not self.finished:
            cmds += self._advance_stages(now)
            cmds += self._evaluate(now)
        snap = self.snapshot()
        if snap != self._last_saved:
            self._last_saved = snap
            cmds.append(Save(self.bridge_id, snap))
        return cmds

    def _count(self, *states: PartyState) -> int:
        return sum(1 for p in self.parties.values() if p.state in states)

    def _evaluate(self, now: datetime) -> list[Command]:
        connected = self._count(PartyState.CONNECTED)
        if self.state is BridgeState.CONNECTED:
            coming = (PartyState.DIALING, PartyState.CONFIRMING)
            replacing = sum(1 for p in self.parties.values() if p.replacing and p.state in coming)
            if connected + replacing < 2:
                return self.finish(BridgeState.ENDED, "fewer_than_two_parties", now)
            return []
        for role in sorted(self.settings.required):
            if self.parties[role].state is PartyState.UNREACHABLE:
                return self.finish(BridgeState.FAILED, f"unreachable:{role.value}", now)
        if connected >= 2:
            return self._connect(now)
        if self._count(*LIVE_STATES) < 2:
            return self.finish(BridgeState.FAILED, "fewer_than_two_parties", now)
        return []

    def _connect(self, now: datetime) -> list[Command]:
        self.connected_at = self.connected_at or now
        cmds = [CancelTimer(DEADLINE_TIMER), *self._set_state(BridgeState.CONNECTED, now)]
        if not self.recording:
            self.recording = True
            cmds.append(StartRecording(self.conference_id))
        return cmds

    def _advance_stages(self, now: datetime) -> list[Command]:
        """Dial the waiting parties of the first stage whose predecessors are all settled."""
        for stage in self.settings.dial_stages:
            states = [self.parties[r].state for r in stage]
            if PartyState.DIALING in states or PartyState.CONFIRMING in states:
                return []
            waiting = [r for r in stage if self.parties[r].state is PartyState.WAITING]
            if waiting:
                cmds: list[Command] = []
                for role in waiting:
                    cmds += self.parties[role].dial(now)
                return cmds
        return []

    def finish(
        self, state: BridgeState, reason: str, now: datetime, *, timer_fired: bool = False
    ) -> list[Command]:
        """End or fail the bridge: hang up or stop dialling every party still there."""
        cmds: list[Command] = []
        for party in self.parties.values():
            if party.state in LIVE_STATES:
                cmds += party.leave(f"bridge_{state.value}", now)
        if self.state is BridgeState.DIALING and not timer_fired:
            cmds.append(CancelTimer(DEADLINE_TIMER))
        if self.recording:
            cmds.append(StopRecording(self.conference_id))
        self.ended_at = now
        self.end_reason = reason
        return cmds + self._set_state(state, now)
