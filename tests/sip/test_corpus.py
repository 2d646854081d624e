"""The captured corpus (tests/sip/captures, recorded from Kamailio, baresip, pyVoIP, SIPp and the
lab's probe by captures/record.py) parses, passes our checks and round-trips byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from telephony.sip.digest import Challenge
from telephony.sip.message import SipRequest, SipResponse, parse_message
from telephony.sip.screening import Rejected, screen
from telephony.sip.sdp import SessionDescription, answer_offer

CAPTURES = sorted((Path(__file__).parent / "captures").glob("*.sip"))


def test_corpus_is_not_empty() -> None:
    peers = {p.name.split("-")[1] for p in CAPTURES}
    assert {"kamailio", "baresip", "pyvoip", "sipp"} <= peers, peers


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_capture_round_trips(path: Path) -> None:
    raw = path.read_bytes()
    msg = screen(raw)
    assert not isinstance(msg, Rejected), msg
    # byte for byte, up to the one liberty we take: one space after a header's colon
    # (SIPp pads "Content-Length:   197")
    head, sep, body = raw.partition(b"\r\n\r\n")
    canonical = re.sub(rb"(?m)^([A-Za-z-]+): *", rb"\1: ", head) + sep + body
    assert bytes(msg) == canonical
    assert parse_message(bytes(msg)) == msg
    _ = (
        msg.vias,
        msg.from_,
        msg.to,
        msg.cseq,
        msg.name_addrs("Contact"),
        msg.name_addrs("Record-Route"),
    )
    for value in msg.headers.get_all("WWW-Authenticate") + msg.headers.get_all(
        "Proxy-Authenticate"
    ):
        assert Challenge.parse(value).realm
    if msg.content_type == "application/sdp":
        _, media = answer_offer(SessionDescription.parse(msg.body), "127.0.0.1", 4000)
        assert media.remote_port > 0


def test_baresip_answer_through_kamailio_has_a_route() -> None:
    path = next(p for p in CAPTURES if "baresip" in p.name and "-200-" in p.name)
    msg = parse_message(path.read_bytes())
    assert isinstance(msg, SipResponse)
    assert msg.name_addrs("Record-Route")[0].uri.param("lr") == "on"
    assert msg.to.tag


def test_pyvoip_invite_is_an_offer() -> None:
    path = next(p for p in CAPTURES if "pyvoip" in p.name and "INVITE" in p.name)
    msg = parse_message(path.read_bytes())
    assert isinstance(msg, SipRequest)
    assert msg.headers.get("User-Agent") == "pyVoIP 1.6.8"
    assert [v.host for v in msg.vias] == ["127.0.0.1", "127.0.0.1"]
