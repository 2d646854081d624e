"""SIP URIs and name-addr values (RFC 3261 19.1, 20.10)."""

from __future__ import annotations

import pytest

from telephony.sip.uri import NameAddr, SipUri


def test_full_uri() -> None:
    u = SipUri.parse("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=hi&x=y")
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sips",
        "alice",
        "secret",
        "[2001:db8::1]",
        5061,
    )
    assert u.transport == "tcp"
    assert u.param("lr") == ""
    assert u.headers == (("subject", "hi"), ("x", "y"))
    assert u.host_bare == "2001:db8::1"
    assert SipUri.parse(str(u)) == u


def test_minimal_uri() -> None:
    u = SipUri.parse("sip:example.com")
    assert u.user is None and u.port is None
    assert u.hostport() == ("example.com", 5060)
    assert str(u) == "sip:example.com"


@pytest.mark.parametrize(
    "text",
    [
        "http://example.com",
        "sip:",
        "sip:@host",
        "sip:bob@",
        "sip:bob@host:99999",
        "sip:bob@host:port",
        "sip:bo b@host",
        "sip:bob\r\n@host",
        "sip:bob@ho<st",
        "sip:bob@[::1",
        "sip:bob@host;=x",
        'sip:bob@host;a="quoted"',
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(ValueError):
        SipUri.parse(text)


def test_user_with_escapes_and_phone_chars() -> None:
    u = SipUri.parse("sip:+86%2010-123@pbx.example.com;user=phone")
    assert u.user == "+86%2010-123"
    assert u.param("USER") == "phone"


def test_name_addr_forms() -> None:
    a = NameAddr.parse('"Bob \\"B\\"" <sip:bob@h;lr>;tag=123;expires=60')
    assert a.display_name == 'Bob "B"'
    assert a.uri.param("lr") == ""
    assert a.tag == "123"
    assert a.param("expires") == "60"
    assert NameAddr.parse(str(a)) == a

    b = NameAddr.parse("sip:bob@h;tag=9")  # addr-spec: params belong to the header
    assert b.uri.params == ()
    assert b.tag == "9"

    c = NameAddr.parse("Bob Smith <sip:bob@h>")
    assert c.display_name == "Bob Smith"

    d = NameAddr.parse('<sip:b@h>;+sip.instance="<urn:uuid:1>"')
    assert d.param("+sip.instance") == '"<urn:uuid:1>"'


@pytest.mark.parametrize(
    "text", ['"unterminated <sip:a@h>', "<sip:a@h", "<sip:a@h> junk", "Bo<b> <sip:a@h>"]
)
def test_bad_name_addrs(text: str) -> None:
    with pytest.raises(ValueError):
        NameAddr.parse(text)


def test_display_name_refuses_crlf() -> None:
    with pytest.raises(ValueError):
        str(NameAddr(SipUri("h", user="a"), display_name="x\r\nVia: y"))


def test_parsed_values_are_memoised_but_a_bad_value_fails_every_time() -> None:
    """NameAddr/Via/CSeq parsing is cached (issue 17): the same text gives the same immutable
    value without parsing again, a refused text is refused again (never cached), and the
    cache is bounded (a flood of unique values cannot grow it)."""
    import dataclasses

    from telephony.sip.headers import CSeq, Via

    text = '"Desk 3" <sip:4001@127.0.0.1:5090>;tag=memo-1'
    first, again = NameAddr.parse(text), NameAddr.parse(text)
    assert first is again and first.param("tag") == "memo-1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.params = ()  # type: ignore[misc]
    via = Via.parse("SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-memo")
    assert Via.parse("SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-memo") is via
    assert CSeq.parse("7 INVITE") is CSeq.parse("7 INVITE")
    for _ in range(2):
        with pytest.raises(ValueError):
            NameAddr.parse("<sip:4001@127.0.0.1")  # unterminated: refused both times
        with pytest.raises(ValueError):
            CSeq.parse("99999999999 INVITE")
    for parse in (NameAddr.parse, Via.parse, CSeq.parse, SipUri.parse):
        info = parse.cache_info()  # type: ignore[attr-defined]
        assert info.maxsize is not None and info.maxsize <= 4096
