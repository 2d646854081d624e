"""Our UA against a real Kamailio and real baresip phones (issue 3's "done when" list)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.sipprobe import sip_options
from telephony.sip.errors import RegistrationAuthError
from telephony.sip.leg import Dtmf, EndReason, Leg, LegState, MediaChanged
from telephony.types import Codec

from .conftest import UAFactory

pytestmark = [pytest.mark.integration]
MEDIA = ("127.0.0.1", 41000)


async def in_thread(fn: Callable[..., object], *args: object) -> object:
    return await asyncio.to_thread(fn, *args)


async def test_register_through_401_and_unregister_on_stop(
    kamailio: Kamailio, ua_factory: UAFactory
) -> None:
    ua = await ua_factory(kamailio, user="1000")
    assert ua.registered
    assert kamailio.registered("1000")
    contacts = kamailio.contacts("1000")
    assert any(f":{ua.config.listen_port}" in c for c in contacts), contacts
    await ua.stop()
    assert not kamailio.registered("1000")


async def test_wrong_password_is_a_clear_auth_error(
    kamailio: Kamailio, ua_factory: UAFactory
) -> None:
    started = time.monotonic()
    with pytest.raises(RegistrationAuthError) as info:
        await ua_factory(kamailio, user="1001", password="wrong")
    assert time.monotonic() - started < 5
    assert info.value.status == 401
    assert not kamailio.registered("1001")


async def test_options_answered(kamailio: Kamailio, ua_factory: UAFactory) -> None:
    ua = await ua_factory(kamailio, user="1002")
    status = await asyncio.to_thread(sip_options, "127.0.0.1", ua.config.listen_port, 2.0)
    assert status is not None and status.startswith("SIP/2.0 200")


async def test_call_phone_answered_then_bye_from_us(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    phone = phone_factory("2001", tone_hz=400)
    ua = await ua_factory(kamailio, user="1000")
    since = phone.event_count()
    leg = await ua.dial("2001", local_media=MEDIA, ring_timeout=10)  # INVITE challenged by 407
    assert await leg.wait_answered(10)
    assert leg.media is not None and leg.media.codec is Codec.PCMU
    assert phone.rtp.lo <= leg.media.remote_port <= phone.rtp.hi
    await in_thread(phone.wait_established, 5, since)
    await leg.hangup()
    assert leg.end_reason is EndReason.NORMAL_LOCAL
    await in_thread(phone.wait_closed, 5, since)


async def test_bye_from_phone(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    phone = phone_factory("2002")
    ua = await ua_factory(kamailio, user="1001")
    since = phone.event_count()
    leg = await ua.dial("2002", local_media=MEDIA, ring_timeout=10)
    assert await leg.wait_answered(10)
    await in_thread(phone.wait_established, 5, since)
    await in_thread(phone.hangup)
    assert await leg.wait_ended(10)
    assert leg.end_reason is EndReason.NORMAL_REMOTE


async def test_busy_phone(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    phone = phone_factory("2003", auto_answer=False)
    ua = await ua_factory(kamailio, user="1002")
    since = phone.event_count()
    leg = await ua.dial("2003", local_media=MEDIA, ring_timeout=10)
    await in_thread(phone.wait_incoming, 5, since)
    await in_thread(phone.hangup)  # rejects the ringing call with 486
    assert await leg.wait_ended(10)
    assert (leg.end_reason, leg.sip_status) == (EndReason.BUSY, 486)


async def test_no_answer_is_cancelled_after_ring_timeout(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    phone = phone_factory("2004", auto_answer=False)
    ua = await ua_factory(kamailio, user="1003")
    since = phone.event_count()
    leg = await ua.dial("2004", local_media=MEDIA, ring_timeout=2)
    await in_thread(phone.wait_incoming, 5, since)
    assert await leg.wait_ended(10)
    assert leg.end_reason is EndReason.TIMEOUT
    await in_thread(phone.wait_closed, 5, since)  # the phone stopped ringing
    assert phone.call_count() == 0


async def test_unknown_number_is_not_found(kamailio: Kamailio, ua_factory: UAFactory) -> None:
    ua = await ua_factory(kamailio, user="1004")
    leg = await ua.dial("2999", local_media=MEDIA, ring_timeout=10)
    assert await leg.wait_ended(10)
    assert (leg.end_reason, leg.sip_status) == (EndReason.NOT_FOUND, 404)


async def test_registered_but_dead_phone_is_unreachable(
    kamailio: Kamailio, ua_factory: UAFactory
) -> None:
    dead = await ua_factory(kamailio, user="2005")
    await dead.abort()  # crashed: its binding stays in Kamailio's location table
    assert kamailio.registered("2005")
    ua = await ua_factory(kamailio, user="1005")
    leg = await ua.dial("2005", local_media=MEDIA, ring_timeout=30)
    assert await leg.wait_ended(15)  # Kamailio's fr_timer answers 408 after 5 s
    assert leg.end_reason is EndReason.UNREACHABLE
    kamailio.unregister("2005")


async def test_inbound_call_from_phone_answered_and_bye_from_phone(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    ua = await ua_factory(kamailio, user="1006")
    phone = phone_factory("2006")
    since = await in_thread(phone.dial, "1006")
    leg = await asyncio.wait_for(ua.incoming.get(), 10)
    assert leg.direction == "inbound" and leg.remote_number == "2006"
    await leg.ring()
    await leg.answer(MEDIA)
    assert leg.state is LegState.ANSWERED and leg.media is not None
    await in_thread(phone.wait_established, 5, since)
    await asyncio.sleep(1.0)  # the ACK has arrived: the call stays up
    assert leg.state is LegState.ANSWERED
    await in_thread(phone.hangup)
    assert await leg.wait_ended(10)
    assert leg.end_reason is EndReason.NORMAL_REMOTE


async def test_inbound_call_rejected(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    ua = await ua_factory(kamailio, user="1007")
    phone = phone_factory("2007")
    since = await in_thread(phone.dial, "1007")
    leg = await asyncio.wait_for(ua.incoming.get(), 10)
    await leg.reject(486)
    assert leg.end_reason is EndReason.BUSY
    ev = await in_thread(phone.wait_closed, 5, since)
    assert "486" in str(ev) or "Busy" in str(ev), ev


async def test_inbound_caller_cancels_while_ringing(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    ua = await ua_factory(kamailio, user="1008")
    phone = phone_factory("2008")
    since = await in_thread(phone.dial, "1008")
    leg = await asyncio.wait_for(ua.incoming.get(), 10)
    await leg.ring()
    await asyncio.sleep(0.5)
    await in_thread(phone.hangup)  # CANCEL
    assert await leg.wait_ended(10)
    assert (leg.end_reason, leg.sip_status) == (EndReason.CANCELLED, 487)
    await in_thread(phone.wait_closed, 5, since)


async def test_info_dtmf_and_hold_between_two_of_ours_through_kamailio(
    kamailio: Kamailio, ua_factory: UAFactory
) -> None:
    caller = await ua_factory(kamailio, user="1000")
    callee = await ua_factory(kamailio, user="1009")
    leg = await caller.dial("1009", local_media=MEDIA, ring_timeout=10)
    inbound = await asyncio.wait_for(callee.incoming.get(), 10)
    await inbound.answer(("127.0.0.1", 41100))
    assert await leg.wait_answered(10)
    assert leg.dialog is not None and leg.dialog.route_set  # Kamailio record-routes
    for digit in "1#":
        await leg.send_info_dtmf(digit)
    got = []
    async with asyncio.timeout(5):
        while len(got) < 2:
            ev = await inbound.events.get()
            if isinstance(ev, Dtmf):
                got.append(ev.digit.digit)
    assert got == ["1", "#"]
    assert await leg.hold() == 200
    assert inbound.media is not None and inbound.media.direction.value == "recvonly"
    assert await leg.resume() == 200
    assert inbound.media.direction.value == "sendrecv" if inbound.media else False
    await inbound.hangup()
    assert await leg.wait_ended(5)
    assert leg.end_reason is EndReason.NORMAL_REMOTE


async def test_invite_with_wrong_password_ends_auth_failed(
    kamailio: Kamailio, ua_factory: UAFactory
) -> None:
    # trunk-style UA (no REGISTER) whose INVITE Kamailio challenges with 407
    ua = await ua_factory(
        None, user="1001", password="wrong", trunk_peer=("127.0.0.1", kamailio.udp_port)
    )
    leg = await ua.dial("2001", local_media=MEDIA, ring_timeout=10)
    assert await leg.wait_ended(5)
    assert (leg.end_reason, leg.sip_status) == (EndReason.AUTH_FAILED, 407)


async def test_call_through_401_challenge_on_invite(
    kamailio_401: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    phone = phone_factory("2009", kamailio=kamailio_401)
    ua = await ua_factory(kamailio_401, user="1001")
    leg = await ua.dial("2009", local_media=MEDIA, ring_timeout=10)
    assert await leg.wait_answered(10)
    await leg.hangup()
    assert leg.end_reason is EndReason.NORMAL_LOCAL
    await in_thread(phone.wait_closed, 5)  # the phone saw our BYE


async def test_phone_puts_us_on_hold_and_resumes(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    phone = phone_factory("2003")
    ua = await ua_factory(kamailio, user="1002")
    since = phone.event_count()
    leg = await ua.dial("2003", local_media=MEDIA, ring_timeout=10)
    assert await leg.wait_answered(10)
    await in_thread(phone.wait_established, 5, since)
    await in_thread(phone.command, "hold")  # baresip sends a re-INVITE with a=sendonly
    ev = await next_media_change(leg)
    assert ev.held and ev.media.direction.value == "recvonly"
    await in_thread(phone.command, "resume")
    ev = await next_media_change(leg)
    assert not ev.held and ev.media.direction.value == "sendrecv"
    assert leg.state is LegState.ANSWERED
    await leg.hangup()


async def next_media_change(leg: Leg) -> MediaChanged:
    async with asyncio.timeout(5):
        while True:
            ev = await leg.events.get()
            if isinstance(ev, MediaChanged):
                return ev


async def test_phone_sends_rtp_where_our_sdp_said(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone], ua_factory: UAFactory
) -> None:
    """What the media engine relies on: RTP arrives at our offered port from leg.media's peer."""
    import socket

    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.settimeout(5)
    try:
        phone_factory("2004", tone_hz=1000)  # auto-answers, sends a 1 kHz tone
        ua = await ua_factory(kamailio, user="1004")
        leg = await ua.dial("2004", local_media=rtp.getsockname(), ring_timeout=10)
        assert await leg.wait_answered(10)
        assert leg.media is not None
        packets = []
        for _ in range(20):
            data, src = await asyncio.to_thread(rtp.recvfrom, 2048)
            packets.append((data, src))
        assert {src for _, src in packets} == {(leg.media.remote_host, leg.media.remote_port)}
        assert {data[1] & 0x7F for data, _ in packets} == {leg.media.codec.payload_type}
        assert all(len(data) == 12 + 160 for data, _ in packets)  # 20 ms of G.711
        await leg.hangup()
    finally:
        rtp.close()
