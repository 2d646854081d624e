"""The media engine against real peers: our SIP user agent calls baresip phones (through
Kamailio) and SIPp; audio is checked in the phones' own recordings.

- three phones with different tones in one conference, PCMU and PCMA: each recording holds the
  two other tones and its own at least 30 dB lower;
- digits from baresip (RFC 4733), from SIPp playing the shipped RFC 2833 captures, by SIP INFO
  and as in-band tones in a WAV: each received exactly once and in order;
- a digit we send by RFC 4733 is reported by baresip.
"""

from __future__ import annotations

import asyncio
import contextlib
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from lab import ports
from lab.audio import tone_report
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.sipp import Sipp
from telephony.media import MediaEngine, RtpEndpoint
from telephony.media.inband import dtmf_tone
from telephony.sip.leg import Dtmf, Leg, MediaChanged
from telephony.sip.ua import UAConfig, UserAgent
from telephony.types import Codec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TONES = {"2001": 400.0, "2002": 1000.0, "2003": 1800.0}


class Stack:
    """Our UA and media engine, with the glue a call flow runner would have."""

    def __init__(self, ua: UserAgent, engine: MediaEngine) -> None:
        self.ua = ua
        self.engine = engine
        self.legs: list[tuple[Leg, RtpEndpoint]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def call(self, target: str, inband: bool | None = None) -> tuple[Leg, RtpEndpoint]:
        ep = await self.engine.open_endpoint(f"leg-{target[-8:]}", inband_dtmf=inband)
        leg = await self.ua.dial(
            target, local_media=(self.engine.host, ep.local_port), ring_timeout=15
        )
        assert await leg.wait_answered(20), f"{target} did not answer: {leg.end_reason}"
        assert leg.media is not None
        ep.configure(leg.media)
        self._tasks.append(asyncio.create_task(self._follow(leg, ep)))
        self.legs.append((leg, ep))
        return leg, ep

    async def _follow(self, leg: Leg, ep: RtpEndpoint) -> None:
        while not leg.ended:
            event = await leg.events.get()
            if isinstance(event, MediaChanged):
                ep.configure(event.media)
            elif isinstance(event, Dtmf):
                ep.inject_dtmf(event.digit)

    async def hangup_all(self) -> None:
        for leg, ep in self.legs:
            if not leg.ended:
                await leg.hangup()
            await ep.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def stack(kamailio: Kamailio, lab_users: dict[str, str]) -> AsyncIterator[Stack]:
    rtp = ports.rtp_range(40)
    ua = UserAgent(UAConfig(
        listen_host="127.0.0.1", listen_port=ports.sip_port(),
        registrar=("127.0.0.1", kamailio.udp_port), user="1000",
        password=lab_users["1000"], domain=kamailio.domain,
    ))  # fmt: skip
    engine = MediaEngine("127.0.0.1", (rtp.lo, rtp.hi))
    await engine.start()
    await ua.start()
    st = Stack(ua, engine)
    try:
        yield st
    finally:
        await st.hangup_all()
        await ua.stop()
        await engine.stop()
        ports.release(rtp)


@pytest.fixture
def sipp_runs() -> Iterator[list[Sipp]]:
    runs: list[Sipp] = []
    yield runs
    for run in runs:
        run.stop()


async def _digits(ep: RtpEndpoint, count: int, timeout: float = 15.0) -> str:
    async with asyncio.timeout(timeout):
        return "".join([(await ep.digits.get()).digit for _ in range(count)])


async def _no_more_digits(ep: RtpEndpoint, wait: float = 1.0) -> None:
    await asyncio.sleep(wait)
    assert ep.digits.get_nowait() is None


@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
async def test_three_phones_each_hear_the_other_two_and_not_themselves(
    stack: Stack, phone_factory: Callable[..., BaresipPhone], codec: str
) -> None:
    phones = {u: phone_factory(u, tone_hz=hz, codecs=(codec,)) for u, hz in TONES.items()}
    conf = stack.engine.create_conference("three-way")
    for user in phones:
        leg, ep = await stack.call(user)
        assert leg.media is not None and leg.media.codec is Codec[codec.upper()]
        conf.add(ep, user)
    await asyncio.sleep(4.0)
    await stack.hangup_all()
    for user, phone in phones.items():
        phone.wait_recordings_complete(5.0)
        heard = tone_report(phone.received_recordings()[-1], TONES.values(), start=1.0)
        own = heard[TONES[user]]
        for other, hz in TONES.items():
            if other != user:
                assert heard[hz] > -30.0, f"{user} does not hear {other}: {heard}"
                assert heard[hz] - own >= 30.0, f"{user} hears itself: {heard}"


async def test_baresip_rfc4733_digits_arrive_once_in_order(
    stack: Stack, phone_factory: Callable[..., BaresipPhone]
) -> None:
    phone = phone_factory("2004")
    _, ep = await stack.call("2004")
    await asyncio.sleep(0.5)
    await asyncio.to_thread(phone.send_dtmf, "1590*#")
    assert await _digits(ep, 6) == "1590*#"
    await _no_more_digits(ep)
    assert ep.stats.dtmf_duplicates == 0


async def test_a_digit_we_send_is_reported_by_baresip(
    stack: Stack, phone_factory: Callable[..., BaresipPhone]
) -> None:
    phone = phone_factory("2005")
    _, ep = await stack.call("2005")
    since = phone.event_count()
    await asyncio.sleep(0.5)
    await ep.send_dtmf("7", duration_ms=160)
    event = await asyncio.to_thread(
        phone.wait_event, ("CALL_DTMF_START", "CALL_DTMF_END"), 5.0, since
    )
    assert event.get("param") == "7", event


async def test_sipp_rfc2833_captures_arrive_once_in_order(
    kamailio: Kamailio, lab_users: dict[str, str], tmp_path: Path, sipp_runs: list[Sipp]
) -> None:
    """SIPp calls our UA (as a trusted trunk peer) and replays the shipped captures."""
    rtp = ports.rtp_range(20)
    sip_port = ports.sip_port()
    engine = MediaEngine("127.0.0.1", (rtp.lo, rtp.hi))
    ua = UserAgent(UAConfig(
        listen_host="127.0.0.1", listen_port=sip_port, registrar=None, user="1000",
        password="", trusted_peers=frozenset({"127.0.0.1"}),
    ))  # fmt: skip
    await engine.start()
    await ua.start()
    sipp = Sipp.caller(
        tmp_path / "sipp", ("127.0.0.1", sip_port), "1000", dtmf="159#", hold_ms=1500, media="echo"
    )
    sipp_runs.append(sipp)
    try:
        sipp.start()
        async with asyncio.timeout(20):
            leg = await ua.incoming.get()
        ep = await engine.open_endpoint("sipp", inband_dtmf=False)
        await leg.answer((engine.host, ep.local_port))
        assert leg.media is not None
        ep.configure(leg.media)
        assert await _digits(ep, 4) == "159#"
        await _no_more_digits(ep, 0.5)
        assert all(d == 0 for d in (ep.stats.dtmf_duplicates, ep.stats.malformed))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(sipp.wait, 20)
        await ua.stop()
        await engine.stop()
        ports.release(rtp)
        ports.release(sip_port)


async def test_sip_info_and_inband_digits_join_the_leg_stream(
    stack: Stack, phone_factory: Callable[..., BaresipPhone], tmp_path: Path
) -> None:
    """A phone whose microphone plays DTMF tones (in-band), plus one key by SIP INFO
    forwarded by the UA glue: one ordered stream, nothing twice."""
    wav = tmp_path / "keys.wav"
    pcm = bytes(16000) + b"".join(dtmf_tone(d, 120) + bytes(2400) for d in "2580")
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm + bytes(160000))
    phone_factory("2006", wav=wav)
    leg, ep = await stack.call("2006", inband=True)
    assert await _digits(ep, 4) == "2580"
    from telephony.types import DtmfDigit

    leg.mark_dtmf(DtmfDigit("9", "info", asyncio.get_running_loop().time()))
    assert await _digits(ep, 1) == "9"
    await _no_more_digits(ep)
