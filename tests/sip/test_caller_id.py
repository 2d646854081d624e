"""Caller id (主叫号码显示): From display name and user of outbound calls, PAI in trunk mode."""

from __future__ import annotations

import dataclasses

import pytest

from telephony.sip.message import parse_message
from telephony.sip.ua import UserAgent
from tests.sip.ports import sip_port
from tests.sip.test_ua_loopback import pair_config


async def _invite_seen_by_callee(**caller: object) -> tuple[bytes, str]:
    ca, cb = pair_config(sip_port(), sip_port())
    a = UserAgent(dataclasses.replace(ca, **caller))  # type: ignore[arg-type]
    b = UserAgent(cb)
    seen: list[bytes] = []
    b.endpoint.taps.append(
        lambda d, data, _a: seen.append(data) if d == "in" and data.startswith(b"INVITE") else None
    )
    await a.start()
    await b.start()
    try:
        leg = await a.dial("2001", local_media=("127.0.0.1", 40000), ring_timeout=5)
        incoming = await b.incoming.get()
        await incoming.reject(486)
        await leg.wait_ended(5)
        return seen[0], incoming.remote_number
    finally:
        await a.stop()
        await b.stop()


async def test_trunk_mode_sends_name_number_and_p_asserted_identity() -> None:
    raw, remote = await _invite_seen_by_callee(caller_name="110指挥中心", caller_number="110110")
    invite = parse_message(raw)
    assert invite.from_.display_name == "110指挥中心"
    assert invite.from_.uri.user == "110110" and remote == "110110"
    pai = invite.headers.get("P-Asserted-Identity") or ""
    assert pai.startswith('"110指挥中心" <sip:110110@'), pai


async def test_without_a_caller_id_the_from_is_the_sip_user_alone() -> None:
    raw, remote = await _invite_seen_by_callee()
    invite = parse_message(raw)
    assert invite.from_.display_name is None and remote == "1000"


@pytest.mark.parametrize("name", ['110"x', "a\\b", "x\r\nVia: y", ""])
def test_unsafe_caller_names_are_refused(name: str) -> None:
    ca, _ = pair_config(sip_port(), sip_port())
    with pytest.raises(ValueError):
        dataclasses.replace(ca, caller_name=name)
