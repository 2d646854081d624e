"""Small rules with big effects: where responses go (RFC 3581), failure statuses → end reasons,
and that a stopped UA leaves no task behind."""

from __future__ import annotations

import asyncio

import pytest

from telephony.sip.headers import Via
from telephony.sip.leg import EndReason
from telephony.sip.outbound import end_reason_for
from telephony.sip.transport import response_destination, stamp_via
from telephony.sip.ua import UAConfig, UserAgent

from .ports import sip_port


@pytest.mark.parametrize(
    "via, source, dest",
    [
        # RFC 3581 4: rport asked -> received + rport = the real source
        (
            "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1;rport",
            ("192.0.2.7", 40000),
            ("192.0.2.7", 40000),
        ),
        # no rport, sent-by differs from the source -> received, sent-by port (RFC 3261 18.2.2)
        ("SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1", ("192.0.2.7", 40000), ("192.0.2.7", 5070)),
        # no rport, sent-by is the source host -> sent-by as is; default port 5060
        ("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1", ("192.0.2.7", 40000), ("192.0.2.7", 5060)),
    ],
)
def test_responses_go_where_via_says(
    via: str, source: tuple[str, int], dest: tuple[str, int]
) -> None:
    stamped = stamp_via(Via.parse(via), source)
    assert response_destination(stamped) == dest
    assert Via.parse(str(stamped)) == stamped


@pytest.mark.parametrize(
    "status, rang, reason",
    [
        (486, False, EndReason.BUSY),
        (600, False, EndReason.BUSY),
        (603, True, EndReason.DECLINED),
        (404, False, EndReason.NOT_FOUND),
        (484, False, EndReason.NOT_FOUND),
        (604, False, EndReason.NOT_FOUND),
        (480, True, EndReason.UNREACHABLE),
        (503, False, EndReason.UNREACHABLE),
        (408, False, EndReason.UNREACHABLE),
        (408, True, EndReason.TIMEOUT),
        (487, True, EndReason.CANCELLED),
        (403, False, EndReason.AUTH_FAILED),
        (407, False, EndReason.AUTH_FAILED),
        (488, False, EndReason.INCOMPATIBLE),
        (606, False, EndReason.INCOMPATIBLE),
        (415, False, EndReason.REJECTED),
        (302, False, EndReason.FAILED),
        (500, False, EndReason.FAILED),
    ],
)
def test_failure_status_to_end_reason(status: int, rang: bool, reason: EndReason) -> None:
    assert end_reason_for(status, rang=rang) is reason


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_stop_leaves_no_task_behind(transport: str) -> None:
    before = asyncio.all_tasks()
    pa, pb = sip_port(), sip_port()
    kw = {"transport": transport}
    a = UserAgent(UAConfig("127.0.0.1", pa, None, "1000", "x", trunk_peer=("127.0.0.1", pb), **kw))  # type: ignore[arg-type]
    b = UserAgent(UAConfig("127.0.0.1", pb, None, "2001", "x", trunk_peer=("127.0.0.1", pa), **kw))  # type: ignore[arg-type]
    await a.start()
    await b.start()
    leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
    inbound = await asyncio.wait_for(b.incoming.get(), 5)
    await inbound.answer(("127.0.0.1", 40100))
    assert await leg.wait_answered(5)
    await a.stop()
    await b.stop()
    await asyncio.sleep(0)
    leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert not leftover, leftover
