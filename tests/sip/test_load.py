"""Many concurrent calls between two of our UAs on one event loop: all set up, all torn down."""

from __future__ import annotations

import asyncio
import time

from telephony.sip.leg import EndReason, Leg
from telephony.sip.ua import UAConfig, UserAgent

from .ports import sip_port

CALLS = 200


async def test_concurrent_calls_on_one_loop() -> None:
    pa, pb = sip_port(), sip_port()
    a = UserAgent(UAConfig("127.0.0.1", pa, None, "1000", "x", trunk_peer=("127.0.0.1", pb)))
    b = UserAgent(
        UAConfig(
            "127.0.0.1",
            pb,
            None,
            "2001",
            "x",
            trunk_peer=("127.0.0.1", pa),
            incoming_queue_size=CALLS,
        )
    )
    await a.start()
    await b.start()

    async def answer_all() -> list[Leg]:
        legs = []
        for i in range(CALLS):
            leg = await b.incoming.get()
            await leg.answer(("127.0.0.1", 30000 + i))
            legs.append(leg)
        return legs

    try:
        started = time.monotonic()
        answering = asyncio.create_task(answer_all())
        outs = await asyncio.gather(
            *(
                a.dial(str(2000 + i), local_media=("127.0.0.1", 20000 + i), ring_timeout=20)
                for i in range(CALLS)
            )
        )
        answered = await asyncio.gather(*(leg.wait_answered(20) for leg in outs))
        ins = await answering
        setup = time.monotonic() - started
        assert all(answered)
        assert len({leg.call_id for leg in outs}) == CALLS
        started = time.monotonic()
        await asyncio.gather(*(leg.hangup() for leg in outs))
        assert all([await leg.wait_ended(10) for leg in ins])
        teardown = time.monotonic() - started
        assert {leg.end_reason for leg in ins} == {EndReason.NORMAL_REMOTE}
        print(f"\n{CALLS} concurrent calls: set up in {setup:.2f}s, torn down in {teardown:.2f}s")
    finally:
        await a.stop()
        await b.stop()
