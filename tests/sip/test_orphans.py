"""A dialog outlives the process that made it (issue 18): its state is stored when the call is
answered, and a new user agent (a restarted service) ends it with a BYE the peer accepts."""

from __future__ import annotations

import asyncio
import dataclasses
import json

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


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_new_user_agent_ends_the_dialog_a_dead_one_left(transport: str) -> None:
    port_a, port_b = sip_port(), sip_port()
    ca, cb = pair_config(port_a, port_b, transport)
    a, b = UserAgent(ca), UserAgent(cb)
    await a.start()
    await b.start()
    restarted: UserAgent | None = None
    try:
        leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
        inbound = await asyncio.wait_for(b.incoming.get(), 5)
        await inbound.answer(("127.0.0.1", 40100))
        assert await leg.wait_answered(5) and leg.dialog is not None
        state = json.loads(json.dumps(leg.dialog.to_state()))  # as stored in the database
        await a.abort()  # the process dies: no BYE
        assert not await inbound.wait_ended(0.5)  # the peer is left in the call

        restarted = UserAgent(dataclasses.replace(ca))  # the same address, a new process
        await restarted.start()
        assert await restarted.end_orphan(state) == "bye 200"
        assert await inbound.wait_ended(5)
        assert inbound.end_reason is EndReason.NORMAL_REMOTE
        # A second BYE for the same dialog: the peer no longer knows it.
        assert await restarted.end_orphan(state) == "bye 481"
        assert await restarted.end_orphan({"call_id": "x"}) == "no dialog"
    finally:
        for ua in (restarted, b):
            if ua is not None:
                await ua.stop()
