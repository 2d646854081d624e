"""Record the parser corpus: every message our UA receives from real lab peers.

Run by hand (needs root, kamailio, baresip, sipp, pyVoIP):
    .venv/bin/python -m tests.sip.captures.record
It runs a registration through Kamailio's 401, calls to and from a baresip phone (407, 100,
180, 200 with Record-Route, BYE, CANCEL/487), a call from pyVoIP and from SIPp, and an OPTIONS
probe, and writes each received datagram to tests/sip/captures/NNN-<peer>-<start line>.sip.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.ports import rtp_range, sip_port
from lab.session import default_users
from lab.sipp import Sipp
from lab.sipprobe import sip_options
from telephony.sip.ua import UAConfig, UserAgent

HERE = Path(__file__).parent
MEDIA = ("127.0.0.1", 41500)


class Recorder:
    def __init__(self) -> None:
        self.peer = "unknown"
        self.count = 0
        for old in HERE.glob("*.sip"):
            old.unlink()

    def tap(self, direction: str, data: bytes, addr: tuple[str, int]) -> None:
        if direction != "in" or not data.strip():
            return
        first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        slug = re.sub(r"[^A-Za-z0-9]+", "-", first.replace("SIP/2.0", "")).strip("-")[:40]
        self.count += 1
        (HERE / f"{self.count:03d}-{self.peer}-{slug}.sip").write_bytes(data)


async def main() -> None:
    rec = Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        k = Kamailio(work / "k", default_users())
        k.start()
        phone = BaresipPhone(work, "2001", "pw2001", "127.0.0.1", k.udp_port, tone_hz=400)
        phone.start()
        phone.wait_registered()
        ua = UserAgent(
            UAConfig("127.0.0.1", sip_port(), ("127.0.0.1", k.udp_port), "1000", "pw1000")
        )
        ua.endpoint.taps.append(rec.tap)
        try:
            rec.peer = "kamailio"
            await ua.start()
            rec.peer = "baresip-via-kamailio"
            leg = await ua.dial("2001", local_media=MEDIA, ring_timeout=10)
            await leg.wait_answered(10)
            await asyncio.to_thread(phone.hangup)
            await leg.wait_ended(5)
            since = await asyncio.to_thread(phone.dial, "1000")
            inbound = await asyncio.wait_for(ua.incoming.get(), 10)
            await inbound.ring()
            await asyncio.sleep(0.3)
            await asyncio.to_thread(phone.hangup)
            await inbound.wait_ended(5)
            await asyncio.to_thread(phone.wait_closed, 5, since)
            rec.peer = "sipprobe"
            await asyncio.to_thread(sip_options, "127.0.0.1", ua.config.listen_port, 2.0)
        finally:
            rec.peer = "kamailio"
            await ua.stop()
            phone.stop()
            k.stop()
        await pyvoip_call(work, rec)
        await sipp_call(work, rec)
    print(f"recorded {rec.count} messages into {HERE}")


async def pyvoip_call(work: Path, rec: Recorder) -> None:
    """pyVoIP answers only 401 challenges: Kamailio in its 401 mode."""
    from pyVoIP.VoIP import VoIPPhone

    k = Kamailio(work / "k401", default_users(), invite_auth="401")
    k.start()
    rec.peer = "kamailio401"
    ua = UserAgent(UAConfig("127.0.0.1", sip_port(), ("127.0.0.1", k.udp_port), "1000", "pw1000"))
    ua.endpoint.taps.append(rec.tap)
    await ua.start()
    rec.peer = "pyvoip-via-kamailio"
    rtp = rtp_range(20)
    pv = VoIPPhone(
        "127.0.0.1",
        k.udp_port,
        "2009",
        "pw2009",
        myIP="127.0.0.1",
        sipPort=sip_port(),
        rtpPortLow=rtp.lo,
        rtpPortHigh=rtp.hi,
    )
    await asyncio.to_thread(pv.start)
    try:
        call = await asyncio.to_thread(pv.call, "1000")
        leg = await asyncio.wait_for(ua.incoming.get(), 5)
        await leg.answer(MEDIA)
        await asyncio.sleep(1)
        await asyncio.to_thread(call.hangup)
        await leg.wait_ended(5)
    finally:
        await asyncio.to_thread(pv.stop)
        rec.peer = "kamailio401"
        await ua.stop()
        k.stop()


async def sipp_call(work: Path, rec: Recorder) -> None:
    rec.peer = "sipp"
    ua = UserAgent(
        UAConfig("127.0.0.1", sip_port(), None, "1000", "x", trunk_peer=("127.0.0.1", 9))
    )
    ua.endpoint.taps.append(rec.tap)
    await ua.start()
    sipp = Sipp.caller(work / "sipp", ("127.0.0.1", ua.config.listen_port), "1000", hold_ms=500)
    sipp.start()
    try:
        leg = await asyncio.wait_for(ua.incoming.get(), 10)
        await leg.answer(MEDIA)
        await leg.wait_ended(10)
        await asyncio.to_thread(sipp.wait, 10)
    finally:
        sipp.stop()
        await ua.stop()


if __name__ == "__main__":
    asyncio.run(main())
