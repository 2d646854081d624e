"""The dispatcher's requests to a running bridge: drop, redial, mute, hold, end, add a unit.

Each request checks the party's state and raises a `PartyStateError` naming the bridge and the
party when it does not fit (holding a party that is not connected, redialling one that is).
Muting a muted party (and the like) is a harmless no-op. Any request to a finished bridge
raises `FlowFinishedError`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from callflows import commands as c
from callflows.bridge_party import Party, PartyState
from callflows.errors import FlowFinishedError, PartyStateError
from callflows.events import (
    AddUnit,
    EndBridge,
    Event,
    HangupParty,
    HoldParty,
    MuteParty,
    RedialParty,
    Role,
    UnholdParty,
    UnmuteParty,
)

if TYPE_CHECKING:
    from callflows.bridge import BridgeFlow


def _refuse(flow: BridgeFlow, party: Party, what: str) -> PartyStateError:
    return PartyStateError(
        f"cannot {what} a party that is {party.state.value}",
        flow_id=flow.bridge_id,
        party=party.role.value,
        state=party.state.value,
    )


def apply_request(flow: BridgeFlow, event: Event, now: datetime) -> list[c.Command]:
    """Apply one API request to the bridge; returns the commands."""
    from callflows.bridge import BridgeState

    if flow.finished:
        raise FlowFinishedError(
            f"bridge is {flow.state.value}: cannot apply {type(event).__name__}",
            flow_id=flow.bridge_id,
            party=getattr(event, "role", None),
            state=flow.state.value,
        )
    match event:
        case EndBridge():
            return flow.finish(BridgeState.ENDED, "ended_by_request", now)
        case HangupParty(role=role):
            return _drop(flow, flow.parties[role], now)
        case RedialParty(role=role):
            return _redial(flow, flow.parties[role], now)
        case AddUnit(numbers=numbers):
            return _add_unit(flow, numbers, now)
        case MuteParty(role=role) | UnmuteParty(role=role):
            return _mute(flow, flow.parties[role], isinstance(event, MuteParty))
        case HoldParty(role=role) | UnholdParty(role=role):
            return _hold(flow, flow.parties[role], isinstance(event, HoldParty))
    raise TypeError(f"not a bridge event: {event!r}")


def _drop(flow: BridgeFlow, party: Party, now: datetime) -> list[c.Command]:
    if party.state not in (PartyState.CONNECTED, PartyState.DIALING, PartyState.WAITING):
        raise _refuse(flow, party, "hang up")
    cmds = party.leave("dropped", now)
    return [*cmds, c.Notify(flow.bridge_id, "party.left", party.role.value, "dropped")]


def _redial(flow: BridgeFlow, party: Party, now: datetime) -> list[c.Command]:
    if party.state not in (PartyState.LEFT, PartyState.UNREACHABLE):
        raise _refuse(flow, party, "redial")
    return [*party.dial(now), c.Notify(flow.bridge_id, "party.dialing", party.role.value)]


def _add_unit(flow: BridgeFlow, numbers: tuple[str, ...], now: datetime) -> list[c.Command]:
    party = flow.parties[Role.UNIT]
    if party.state not in (PartyState.ABSENT, PartyState.LEFT, PartyState.UNREACHABLE):
        raise _refuse(flow, party, "add")
    return [*party.dial(now, numbers), c.Notify(flow.bridge_id, "party.dialing", "unit")]


def _connected_leg(flow: BridgeFlow, party: Party, what: str) -> str:
    if party.state is not PartyState.CONNECTED or party.leg_id is None:
        raise _refuse(flow, party, what)
    return party.leg_id


def _mute(flow: BridgeFlow, party: Party, mute: bool) -> list[c.Command]:
    leg_id = _connected_leg(flow, party, "mute" if mute else "unmute")
    if party.muted == mute:
        return []
    party.muted = mute
    cmd: c.Command = c.Mute(leg_id) if mute else c.Unmute(leg_id)
    topic = "party.muted" if mute else "party.unmuted"
    return [cmd, c.Notify(flow.bridge_id, topic, party.role.value)]


def _hold(flow: BridgeFlow, party: Party, hold: bool) -> list[c.Command]:
    leg_id = _connected_leg(flow, party, "hold" if hold else "unhold")
    if party.held == hold:
        return []
    party.held = hold
    cmd: c.Command = c.Hold(leg_id) if hold else c.Unhold(leg_id)
    topic = "party.held" if hold else "party.unheld"
    return [cmd, c.Notify(flow.bridge_id, topic, party.role.value)]
