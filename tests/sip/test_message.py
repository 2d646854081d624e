"""Parser and serialiser of SIP messages (RFC 3261 section 7), byte fixtures."""

from __future__ import annotations

import pytest

from telephony.sip.errors import MessageTooLarge, MissingHeader, ParseError
from telephony.sip.headers import CSeq, Headers, Via
from telephony.sip.message import (
    MAX_MESSAGE_BYTES,
    SipRequest,
    SipResponse,
    StreamFramer,
    check_request,
    parse_message,
)

INVITE = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b'From: "Alice A." <sip:alice@atlanta.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"v=0\r\n"
)

COMPACT = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKb;rport\r\n"
    b"V: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKc\r\n"
    b"t: <sip:bob@biloxi.com>\r\n"
    b"f: <sip:alice@atlanta.com>;tag=x\r\n"
    b"i: abc\r\n"
    b"cSeQ: 1 INVITE\r\n"
    b'm: <sip:a@1.2.3.4>, "Other, Name" <sip:b@1.2.3.4;lr>\r\n'
    b"k: 100rel\r\n"
    b"l: 0\r\n"
    b"\r\n"
)


def test_parse_request_fields() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert str(msg.uri) == "sip:bob@biloxi.com"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.from_.display_name == "Alice A."
    assert msg.from_.tag == "1928301774"
    assert msg.to.tag is None
    assert msg.top_via.branch == "z9hG4bK776asdhds"
    assert msg.body == b"v=0\r\n"
    check_request(msg)


def test_round_trip_is_byte_exact() -> None:
    assert bytes(parse_message(INVITE)) == INVITE


def test_compact_forms_and_lists() -> None:
    msg = parse_message(COMPACT)
    assert isinstance(msg, SipRequest)
    vias = msg.vias
    assert [v.host for v in vias] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert vias[1].param("rport") == ""
    assert vias[0].port == 5070
    assert msg.headers.get("Call-ID") == "abc"
    assert msg.headers.get("Supported") == "100rel"
    contacts = msg.name_addrs("Contact")
    assert [c.display_name for c in contacts] == [None, "Other, Name"]
    assert contacts[1].uri.param("lr") == ""
    check_request(msg)
    assert parse_message(bytes(msg)) == msg


def test_folded_header_is_unfolded() -> None:
    raw = INVITE.replace(b"Max-Forwards: 70\r\n", b"Subject: lunch\r\n  tomorrow\r\n")
    msg = parse_message(raw)
    assert msg.headers.get("Subject") == "lunch tomorrow"


def test_response_parse() -> None:
    raw = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=9\r\n"
        b"From: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(raw)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.to.tag == "9"
    assert bytes(msg) == raw


def test_body_beyond_content_length_is_discarded() -> None:
    msg = parse_message(INVITE + b"garbage")
    assert msg.body == b"v=0\r\n"


@pytest.mark.parametrize(
    "raw, hint",
    [
        (b"", 400),
        (b"hello world\r\n\r\n", 400),
        (b"INVITE sip:bob@x SIP/3.0\r\n\r\n", 400),
        (b"INVITE tel:+123 SIP/2.0\r\n\r\n", 416),
        (b"SIP/2.0 99 Too Low\r\n\r\n", 400),
        (INVITE.replace(b"Content-Length: 5", b"Content-Length: 50"), 400),
        (INVITE.replace(b"Content-Length: 5", b"Content-Length: -1"), 400),
        (INVITE.replace(b"Max-Forwards: 70", b"Max Forwards: 70"), 400),
        (INVITE.replace(b"Max-Forwards: 70", b"\xff\xfe: 70"), 400),
        (b"X" * (MAX_MESSAGE_BYTES + 1), 513),
    ],
)
def test_malformed_messages_raise_parse_error(raw: bytes, hint: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(raw)
    assert info.value.status_hint == hint


def test_too_many_headers() -> None:
    raw = INVITE.replace(b"Max-Forwards: 70\r\n", b"X-A: 1\r\n" * 500)
    with pytest.raises(MessageTooLarge):
        parse_message(raw)


def test_missing_mandatory_header() -> None:
    msg = parse_message(INVITE.replace(b"CSeq: 314159 INVITE\r\n", b""))
    assert isinstance(msg, SipRequest)
    with pytest.raises(MissingHeader) as info:
        check_request(msg)
    assert info.value.field == "cseq"


def test_cseq_method_mismatch() -> None:
    msg = parse_message(INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"))
    assert isinstance(msg, SipRequest)
    with pytest.raises(ParseError):
        check_request(msg)


def test_headers_refuse_crlf_injection() -> None:
    h = Headers()
    with pytest.raises(ValueError):
        h.add("Subject", "hi\r\nVia: evil")
    with pytest.raises(ValueError):
        h.add("Bad Name", "x")


def test_headers_set_get_remove() -> None:
    h = Headers([("Via", "a"), ("X", "1"), ("v", "b")])
    assert h.get_all("VIA") == ["a", "b"]
    h.set("Via", "c")
    assert h.get_all("via") == ["c"]
    h.remove("x")
    assert "X" not in h
    assert len(h) == 1


def test_via_round_trip() -> None:
    v = Via.parse("SIP/2.0/udp [::1]:5062;branch=z9hG4bKx;rport=5062;received=127.0.0.1")
    assert v.transport == "UDP"
    assert v.host == "[::1]"
    assert v.sent_by == ("[::1]", 5062)
    assert Via.parse(str(v)) == v


def test_stream_framer_cuts_by_content_length() -> None:
    framer = StreamFramer()
    stream = b"\r\n\r\n" + INVITE + INVITE
    out: list[bytes] = []
    for i in range(0, len(stream), 7):
        out += framer.feed(stream[i : i + 7])
    assert out == [INVITE, INVITE]


def test_stream_framer_requires_content_length() -> None:
    framer = StreamFramer()
    with pytest.raises(ParseError):
        framer.feed(INVITE.replace(b"Content-Length: 5\r\n", b""))


def test_stream_framer_refuses_endless_header() -> None:
    framer = StreamFramer()
    with pytest.raises(MessageTooLarge):
        for _ in range(100):
            framer.feed(b"X-Long: " + b"a" * 1000 + b"\r\n")
