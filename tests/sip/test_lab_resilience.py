"""Registration paths, packet loss, TCP, registrar restart, pyVoIP as caller, long calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.ports import rtp_range
from lab.sipp import Sipp
from telephony.sip.digest import parse_auth_params
from telephony.sip.leg import EndReason, LegState

from .conftest import UAFactory
from .helpers import LossyRelay, ProxyAuthRegistrar, is_request, is_response
from .ports import sip_port

pytestmark = [pytest.mark.integration]
MEDIA = ("127.0.0.1", 41200)


async def in_thread(fn: Callable[..., object], *args: object) -> object:
    return await asyncio.to_thread(fn, *args)


async def test_register_through_407_with_sha256_and_qop(ua_factory: UAFactory) -> None:
    registrar = ProxyAuthRegistrar({"1000": "pw1000"})
    registrar.start()
    try:
        ua = await ua_factory(None, user="1000", registrar=registrar.address)
        assert ua.registered
        assert "1000" in registrar.bindings
        answered = [r for r in registrar.seen if r.headers.get("Proxy-Authorization")]
        params = parse_auth_params((answered[0].headers.get("Proxy-Authorization") or "")[7:])
        assert (params["algorithm"], params["qop"], params["nc"]) == ("SHA-256", "auth", "00000001")
        await ua.stop()
        assert "1000" not in registrar.bindings  # unregistered with Expires: 0
    finally:
        registrar.close()


async def test_registration_is_refreshed(kamailio: Kamailio, ua_factory: UAFactory) -> None:
    ua = await ua_factory(kamailio, user="1003", register_expires=10)
    first = kamailio.kamcmd("ul.lookup", "location", "s:1003")
    await asyncio.sleep(9)  # refresh due at 80 % of 10 s
    assert ua.registered and kamailio.registered("1003")
    second = kamailio.kamcmd("ul.lookup", "location", "s:1003")
    assert first != second  # new Expires/CSeq from the refresh


async def test_reregisters_after_registrar_restart(
    kamailio_factory: Callable[..., Kamailio], ua_factory: UAFactory
) -> None:
    k1 = kamailio_factory()
    ua = await ua_factory(k1, user="1004", keepalive_interval=1.0)
    assert k1.registered("1004")
    port = k1.udp_port
    k1.stop()
    await asyncio.sleep(4)  # the keep-alive notices the registrar is gone
    assert not ua.registered
    k2 = kamailio_factory(udp_port=port)
    assert not k2.registered("1004")  # a fresh Kamailio knows nobody
    assert await ua.wait_registered(15)
    assert k2.registered("1004")


async def test_tcp_register_call_and_receive(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    ua = await ua_factory(kamailio, user="1005", transport="tcp")
    assert ua.registered
    assert any("transport=tcp" in c for c in kamailio.contacts("1005"))
    phone = phone_factory("2001")
    since = phone.event_count()
    leg = await ua.dial("2001", local_media=MEDIA, ring_timeout=10)
    assert await leg.wait_answered(10)
    await in_thread(phone.wait_established, 5, since)
    await leg.hangup()
    assert leg.end_reason is EndReason.NORMAL_LOCAL
    await in_thread(phone.wait_closed, 5, since)
    # and a call from the phone reaches us over TCP
    since = await in_thread(phone.dial, "1005")
    inbound = await asyncio.wait_for(ua.incoming.get(), 10)
    await inbound.answer(MEDIA)
    await in_thread(phone.wait_established, 5, since)
    await in_thread(phone.hangup)
    assert await inbound.wait_ended(10)
    assert inbound.end_reason is EndReason.NORMAL_REMOTE


async def test_lost_invite_is_retransmitted_to_sipp(ua_factory: UAFactory, lab_dir: Path) -> None:
    sipp = Sipp.answerer(lab_dir / "sipp-uas", media=None, calls=1)
    sipp.start()
    relay = LossyRelay(("127.0.0.1", sipp.port), [is_request("INVITE"), is_response(200, "INVITE")])
    relay.start()
    try:
        ua = await ua_factory(None, user="1000", trunk_peer=relay.address)
        leg = await ua.dial("3001", local_media=MEDIA, ring_timeout=10)
        assert await leg.wait_answered(10)
        assert len(relay.dropped) == 2  # the first INVITE and the first 200 never arrived
        await leg.hangup()
        assert await in_thread(sipp.wait, 10) == 0
    finally:
        relay.close()
        sipp.stop()


async def test_lost_200_is_retransmitted_to_sipp_caller(
    sipp_factory: Callable[..., Sipp], ua_factory: UAFactory
) -> None:
    ua = await ua_factory(None, user="1000", trunk_peer=("127.0.0.1", 9))
    sipp_port = sip_port()
    relay = LossyRelay(("127.0.0.1", sipp_port), [is_response(200, "INVITE")])
    relay.client = ("127.0.0.1", ua.config.listen_port)
    relay.start()
    try:
        sipp = sipp_factory(
            "uac",
            port=sipp_port,
            remote=relay.address,
            values={
                "DOMAIN": "127.0.0.1",
                "FROM_USER": "3001",
                "HOLD_MS": "1000",
                "SDP_PORT": "[media_port]",
                "MEDIA_ACTION": "",
                "DTMF": "",
            },
            extra_args=["-s", "1000"],
        )
        sipp.start()
        leg = await asyncio.wait_for(ua.incoming.get(), 10)
        await leg.answer(MEDIA)
        assert await leg.wait_ended(15)
        assert leg.end_reason is EndReason.NORMAL_REMOTE
        assert len(relay.dropped) == 1
        assert await in_thread(sipp.wait, 10) == 0  # SIPp got the retransmitted 200 and finished
    finally:
        relay.close()


async def test_receives_call_from_pyvoip(kamailio_401: Kamailio, ua_factory: UAFactory) -> None:
    from pyVoIP.VoIP import CallState, VoIPPhone

    ua = await ua_factory(kamailio_401, user="1006")
    rtp = rtp_range(20)
    phone = VoIPPhone(
        "127.0.0.1",
        kamailio_401.udp_port,
        "2009",
        "pw2009",
        myIP="127.0.0.1",
        sipPort=sip_port(),
        rtpPortLow=rtp.lo,
        rtpPortHigh=rtp.hi,
    )
    await in_thread(phone.start)
    try:
        call = await in_thread(phone.call, "1006")
        leg = await asyncio.wait_for(ua.incoming.get(), 10)
        assert leg.remote_number == "2009"
        await leg.ring()
        await leg.answer(MEDIA)
        deadline = time.monotonic() + 10
        # pyVoIP runs its own threads and offers nothing to await: poll its state
        while call.state != CallState.ANSWERED and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        assert call.state == CallState.ANSWERED  # type: ignore[attr-defined]
        await in_thread(call.hangup)  # type: ignore[attr-defined]
        assert await leg.wait_ended(10)
        assert leg.end_reason is EndReason.NORMAL_REMOTE
    finally:
        await in_thread(phone.stop)


@pytest.mark.slow
async def test_call_held_for_60_seconds_then_bye_from_us(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    phone = phone_factory("2002", tone_hz=400)
    ua = await ua_factory(kamailio, user="1007")
    since = phone.event_count()
    leg = await ua.dial("2002", local_media=MEDIA, ring_timeout=10)
    assert await leg.wait_answered(10)
    await in_thread(phone.wait_established, 5, since)
    answered_at = time.monotonic()
    ended = await leg.wait_ended(62)  # pyVoIP's calls died at ~32 s (timer of a missing ACK)
    assert not ended, f"leg ended after {time.monotonic() - answered_at:.0f} s: {leg.end_reason}"
    assert leg.state is LegState.ANSWERED
    assert phone.call_count() == 1
    closed = [e for e in phone.events[since:] if e.get("type") == "CALL_CLOSED"]
    assert not closed
    await leg.hangup()
    assert leg.end_reason is EndReason.NORMAL_LOCAL
    await in_thread(phone.wait_closed, 5, since)
