"""Dialog creation from both sides, route sets, in-dialog requests (RFC 3261 12)."""

from __future__ import annotations

from telephony.sip.builder import make_response
from telephony.sip.dialog import Dialog
from telephony.sip.message import SipRequest, parse_message

INVITE = (
    b"INVITE sip:2001@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n"
    b"Record-Route: <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>\r\n"
    b"From: <sip:1000@127.0.0.1>;tag=ours\r\nTo: <sip:2001@127.0.0.1>\r\n"
    b"Call-ID: cid1\r\nCSeq: 10 INVITE\r\nContact: <sip:1000@127.0.0.1:5070>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def invite() -> SipRequest:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    return msg


def test_uac_dialog_reverses_record_route() -> None:
    req = invite()
    ok = make_response(req, 200, to_tag="theirs", copy_record_route=True)
    ok.headers.add("Contact", "<sip:2001@127.0.0.1:5080>")
    d = Dialog.from_uac(req, ok, "<sip:1000@127.0.0.1:5070>")
    assert d.id == ("cid1", "ours", "theirs")
    assert [str(r.uri) for r in d.route_set] == ["sip:10.0.0.2;lr", "sip:10.0.0.1;lr"]
    assert str(d.remote_target) == "sip:2001@127.0.0.1:5080"
    bye = d.create_request("BYE")
    assert str(bye.uri) == "sip:2001@127.0.0.1:5080"
    assert bye.headers.get_all("Route") == ["<sip:10.0.0.2;lr>", "<sip:10.0.0.1;lr>"]
    assert bye.cseq.number == 11
    assert bye.from_.tag == "ours" and bye.to.tag == "theirs"
    ack = d.create_request("ACK", cseq=10)
    assert ack.cseq.number == 10 and d.local_seq == 11
    assert str(d.next_hop()) == "sip:10.0.0.2;lr"


def test_uas_dialog_keeps_record_route_order_and_checks_cseq() -> None:
    req = invite()
    d = Dialog.from_uas(req, "mine", "<sip:2001@127.0.0.1:5080>")
    assert d.id == ("cid1", "mine", "ours")
    assert [str(r.uri) for r in d.route_set] == ["sip:10.0.0.1;lr", "sip:10.0.0.2;lr"]
    bye = d.create_request("BYE")
    assert bye.from_.tag == "mine" and bye.to.tag == "ours"
    stale = parse_message(INVITE.replace(b"10 INVITE", b"9 INVITE"))
    assert isinstance(stale, SipRequest)
    assert not d.accept_request(stale)
    reinvite = parse_message(
        INVITE.replace(b"10 INVITE", b"11 INVITE").replace(b":5070>", b":5071>")
    )
    assert isinstance(reinvite, SipRequest)
    assert d.accept_request(reinvite)
    assert d.remote_target.port == 5071


def test_strict_route_puts_target_last() -> None:
    req = invite()
    ok = make_response(req, 200, to_tag="t")
    ok.headers.add("Record-Route", "<sip:10.0.0.9>")
    ok.headers.add("Contact", "<sip:2001@127.0.0.1:5080>")
    d = Dialog.from_uac(req, ok, "")
    bye = d.create_request("BYE")
    assert str(bye.uri) == "sip:10.0.0.9"
    assert bye.headers.get_all("Route") == ["<sip:2001@127.0.0.1:5080>"]
