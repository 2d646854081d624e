"""A dialog outlives the process that made it (issue 18): its state is stored when the call is
answered, and a new user agent (a restarted service) ends it with a BYE the peer accepts."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from telephony.sip.dialog import Dialog
from telephony.sip.errors import ParseError
from telephony.sip.leg import EndReason
from telephony.sip.ua import UserAgent

from .ports import sip_port
from .test_dialog import invite
from .test_ua_loopback import pair_config


def test_dialog_state_round_trips_through_json() -> None:
    from telephony.sip.builder import make_response

    req = invite()
    ok = make_response(req, 200, to_tag="theirs", copy_record_route=True)
    ok.headers.add("Contact", "<sip:2001@127.0.0.1:5080>")
    d = Dialog.from_uac(req, ok, "<sip:1000@127.0.0.1:5070>")
    back = Dialog.from_state(json.loads(json.dumps(d.to_state())))
    assert back.id == d.id and back.local_seq == d.local_seq
    assert str(back.remote_target) == str(d.remote_target)
    assert [str(r) for r in back.route_set] == [str(r) for r in d.route_set]
    bye, again = d.create_request("BYE"), back.create_request("BYE")
    assert str(bye) == str(again)  # the restored dialog builds the same request


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"call_id": "x"},
        {
            **{"call_id": "c", "local_tag": "a", "remote_tag": "b"},
            "local_uri": "<sip:1@h>",
            "remote_uri": "<sip:2@h>",
            "remote_target": "not a uri",
            "local_seq": 1,
        },
    ],
)
def test_a_broken_stored_dialog_is_a_parse_error(state: dict[str, object]) -> None:
    with pytest.raises(ParseError):
        Dialog.from_state(state)


@contextlib.asynccontextmanager
async def crashing_pair(
    transport: str,
) -> AsyncIterator[tuple[UserAgent, UserAgent, Callable[[], Awaitable[UserAgent]]]]:
    """A (the process that will die, `abort()`), B (its peer) and a maker of A's successor on
    A's address (the restarted service); all stopped at the end, whatever happened."""
    ca, cb = pair_config(sip_port(), sip_port(), transport)
    a, b = UserAgent(ca), UserAgent(cb)
    await a.start()
    await b.start()
    made: list[UserAgent] = []

    async def successor() -> UserAgent:
        ua = UserAgent(dataclasses.replace(ca))
        made.append(ua)
        await ua.start()
        return ua

    try:
        yield a, b, successor
    finally:
        await a.abort()
        for ua in (*made, b):
            await ua.stop()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_new_user_agent_ends_the_dialog_a_dead_one_left(transport: str) -> None:
    async with crashing_pair(transport) as (a, b, successor):
        leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
        inbound = await asyncio.wait_for(b.incoming.get(), 5)
        await inbound.answer(("127.0.0.1", 40100))
        assert await leg.wait_answered(5) and leg.dialog is not None
        state = json.loads(json.dumps(leg.dialog.to_state()))  # as stored in the database
        await a.abort()  # the process dies: no BYE
        assert not await inbound.wait_ended(0.5)  # the peer is left in the call

        restarted = await successor()  # the same address, a new process
        assert await restarted.end_orphan(state) == "bye 200"
        assert await inbound.wait_ended(5)
        assert inbound.end_reason is EndReason.NORMAL_REMOTE
        # A second BYE for the same dialog: the peer no longer knows it.
        assert await restarted.end_orphan(state) == "bye 481"
        assert await restarted.end_orphan({"call_id": "x"}) == "no dialog"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_new_user_agent_carries_the_dialog_on_with_a_reinvite(transport: str) -> None:
    """The restarted UA re-INVITEs the stored dialog onto a new RTP port: the peer's media
    moves there, the same dialog goes on (the peer's BYE reaches the new UA's leg)."""
    async with crashing_pair(transport) as (a, b, successor):
        leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
        inbound = await asyncio.wait_for(b.incoming.get(), 5)
        await inbound.answer(("127.0.0.1", 40100))
        assert await leg.wait_answered(5) and leg.dialog is not None
        state = json.loads(json.dumps(leg.dialog.to_state()))
        assert state["sdp_session_id"] and state["transport"] == transport
        await a.abort()

        restarted = await successor()
        resumed = await restarted.resume_orphan(
            state, ("127.0.0.1", 40200), number="2001", timeout=3
        )
        assert resumed.result == "reinvite 200" and resumed.leg is not None
        assert resumed.leg.media is not None and resumed.leg.media.remote_port == 40100
        assert inbound.media is not None and inbound.media.remote_port == 40200  # moved
        assert not inbound.ended
        await inbound.hangup()  # the peer ends the call: the new UA's leg sees it
        assert await resumed.leg.wait_ended(5)
        assert resumed.leg.end_reason is EndReason.NORMAL_REMOTE
        # the dialog is gone now: a second recovery is refused and ends nothing more
        again = await restarted.resume_orphan(state, ("127.0.0.1", 40300), number="2001", timeout=3)
        assert again.leg is None and again.result == "reinvite 481"
        assert await restarted.give_up(again) == "reinvite 481"


async def test_a_recovery_reinvite_nobody_answers_ends_within_its_deadline() -> None:
    port_a = sip_port()
    ca, _ = pair_config(port_a, sip_port(), "udp")
    ua = UserAgent(ca)
    await ua.start()
    try:
        silent = sip_port()  # nobody listens there
        state = {
            "call_id": "gone", "local_tag": "a", "remote_tag": "b",
            "local_uri": f"<sip:1000@127.0.0.1:{port_a}>", "remote_uri": "<sip:2001@127.0.0.1>",
            "remote_target": f"sip:2001@127.0.0.1:{silent}", "local_seq": 5,
        }  # fmt: skip
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        resumed = await ua.resume_orphan(state, ("127.0.0.1", 40400), number="2001", timeout=1.0)
        assert resumed.leg is None and resumed.result == "reinvite timeout"
        assert loop.time() - t0 < 2.0
        assert "gone" not in ua.calls
    finally:
        await ua.stop()


async def test_a_ringing_invite_a_dead_process_left_is_cancelled() -> None:
    async with crashing_pair("udp") as (a, b, successor):
        leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=30)
        inbound = await asyncio.wait_for(b.incoming.get(), 5)
        await inbound.ring()
        for _ in range(50):
            pending = a.pending_state(leg)
            if pending is not None:
                break
            await asyncio.sleep(0.05)
        assert pending is not None
        stored = json.loads(json.dumps(pending))
        await a.abort()
        assert not await inbound.wait_ended(0.3)  # still ringing

        restarted = await successor()
        assert await restarted.end_orphan(stored) == "cancel 200"
        assert await inbound.wait_ended(5)
        assert inbound.end_reason is EndReason.CANCELLED
        assert await restarted.end_orphan({"pending_invite": {"cancel": "junk"}}) == "no dialog"
