"""The SDP address policy (issue 13 finding 4): where we agree to send a call's audio."""

from __future__ import annotations

import pytest

from telephony.sip.media_policy import is_loopback, media_address_problem
from telephony.sip.sdp import SessionDescription


def sdp(host: str, port: int = 40000, *, media_level: bool = False) -> SessionDescription:
    ip = "IP6" if ":" in host else "IP4"
    session_c = "" if media_level else f"c=IN {ip} {host}\r\n"
    media_c = f"c=IN {ip} {host}\r\n" if media_level else ""
    return SessionDescription.parse(
        f"v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\n{session_c}t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n{media_c}a=rtpmap:0 PCMU/8000\r\n".encode()
    )


@pytest.mark.parametrize(
    "host, port, allow_loopback, problem",
    [
        ("192.0.2.10", 40000, False, None),
        ("2001:db8::10", 40000, False, None),
        ("224.0.0.1", 40000, True, "multicast media address"),
        ("ff02::1", 40000, True, "multicast media address"),
        ("0.0.0.0", 40000, True, "unspecified media address"),
        ("::", 40000, True, "unspecified media address"),
        ("127.0.0.1", 40000, False, "loopback media address"),
        ("127.0.0.1", 40000, True, None),
        ("255.255.255.255", 40000, True, "reserved media address"),
        ("192.0.2.10", 1023, True, "media port below 1024"),
        ("192.0.2.10", 1024, True, None),
    ],
)
def test_media_address_policy(
    host: str, port: int, allow_loopback: bool, problem: str | None
) -> None:
    for media_level in (False, True):
        got = media_address_problem(
            sdp(host, port, media_level=media_level), allow_loopback=allow_loopback
        )
        assert got == problem


def test_loopback_is_allowed_only_while_sip_is_on_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("192.0.2.1") and not is_loopback("0.0.0.0")
