"""The lab's Kamailio: keepalive, digest auth in both modes, registrar, no open relay."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.kamailio import CONFIG, Kamailio
from lab.sipprobe import SipProbe

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


def probe(k: Kamailio) -> SipProbe:
    return SipProbe(HOST, k.udp_port, timeout=3.0)


def test_options_keepalive_is_answered(kamailio: Kamailio) -> None:
    with probe(kamailio) as p:
        r = p.request("OPTIONS", f"sip:{HOST}:{kamailio.udp_port}")
    assert r.status == 200


def test_invite_is_challenged_with_407_by_default(kamailio: Kamailio) -> None:
    with probe(kamailio) as p:
        r = p.request("INVITE", kamailio.aor("2002"), from_user="2001")
    assert r.status_line.startswith("SIP/2.0 407")
    assert r.headers["proxy-authenticate"].startswith("Digest ")
    assert f'realm="{kamailio.domain}"' in r.headers["proxy-authenticate"]


def test_register_is_challenged_with_401(kamailio: Kamailio) -> None:
    with probe(kamailio) as p:
        r = p.request(
            "REGISTER",
            f"sip:{HOST}:{kamailio.udp_port}",
            from_user="2005",
            to_uri=kamailio.aor("2005"),
        )
    assert r.status == 401
    assert "www-authenticate" in r.headers


def test_register_with_right_password_then_unregister(kamailio: Kamailio) -> None:
    reg = f"sip:{HOST}:{kamailio.udp_port}"
    with probe(kamailio) as p:
        r = p.request(
            "REGISTER",
            reg,
            from_user="2006",
            to_uri=kamailio.aor("2006"),
            auth=("2006", "pw2006"),
            extra_headers=["Expires: 60"],
        )
        assert r.status == 200, r.raw
        assert kamailio.registered("2006")
        assert any(str(p.local_port) in c for c in kamailio.contacts("2006"))
        r = p.request(
            "REGISTER",
            reg,
            from_user="2006",
            to_uri=kamailio.aor("2006"),
            auth=("2006", "pw2006"),
            extra_headers=["Expires: 0"],
        )
        assert r.status == 200
    assert not kamailio.registered("2006")


def test_wrong_password_does_not_register(kamailio: Kamailio) -> None:
    with probe(kamailio) as p:
        r = p.request(
            "REGISTER",
            f"sip:{HOST}:{kamailio.udp_port}",
            from_user="2007",
            to_uri=kamailio.aor("2007"),
            auth=("2007", "not-the-password"),
        )
    assert r.status == 401
    assert not kamailio.registered("2007")


def test_unknown_user_cannot_register(kamailio: Kamailio) -> None:
    with probe(kamailio) as p:
        r = p.request(
            "REGISTER",
            f"sip:{HOST}:{kamailio.udp_port}",
            from_user="9999",
            to_uri=kamailio.aor("9999"),
            auth=("9999", "pw9999"),
        )
    assert r.status == 401


def test_authenticated_invite_to_unregistered_user_is_404(kamailio: Kamailio) -> None:
    with probe(kamailio) as p:
        r = p.request("INVITE", kamailio.aor("2009"), from_user="2001", auth=("2001", "pw2001"))
    assert r.status == 404


def test_no_open_relay(kamailio: Kamailio) -> None:
    with probe(kamailio) as p:
        r = p.request(
            "INVITE", "sip:110@relay.example.com", from_user="2001", auth=("2001", "pw2001")
        )
    assert r.status == 403


def test_auth_user_must_match_from_user(kamailio: Kamailio) -> None:
    with probe(kamailio) as p:
        r = p.request("INVITE", kamailio.aor("2002"), from_user="2003", auth=("2001", "pw2001"))
    assert r.status == 403


def test_401_mode_challenges_invite_with_401_and_accepts_same_branch(
    kamailio_401: Kamailio,
) -> None:
    k = kamailio_401
    with probe(k) as p:
        r = p.request("INVITE", k.aor("2002"), from_user="2001")
        assert r.status == 401
        assert "www-authenticate" in r.headers
        # pyVoIP re-sends the authenticated INVITE with the challenged branch: it must be
        # processed (404: 2002 is not registered), not swallowed as a retransmission
        r = p.request(
            "INVITE", k.aor("2002"), from_user="2001", auth=("2001", "pw2001"), reuse_branch=True
        )
    assert r.status == 404


def test_trunk_peer_is_trusted_and_trunk_numbers_routed(
    kamailio_factory: Callable[..., Kamailio],
) -> None:
    # a UDP socket standing in for the trunk peer: it sends an unauthenticated INVITE
    # and must not be challenged
    with SipProbe(HOST, 9, timeout=3.0) as trunk:
        k = kamailio_factory(trunk_prefix="3", trunk_target=(HOST, trunk.local_port))
        trunk.remote = (HOST, k.udp_port)
        r = trunk.request("INVITE", k.aor("2009"), from_user="3001")
        assert r.status == 404  # not challenged; 2009 is simply not registered
    with probe(k) as p:
        r = p.request("INVITE", k.aor("2009"), from_user="3001")
        assert r.status == 407  # the same request from anywhere else is challenged


@pytest.mark.parametrize(
    "defines",
    [
        [],  # the container's defaults: no kamailio-local.cfg, no users file
        [
            "SIP_UDP_PORT=15070",
            "WITH_TCP",
            'SIP_DOMAIN="pbx.example"',
            "INVITE_AUTH_401",
            "WITH_TRUNK",
            'TRUNK_REGEX="^9"',
            'TRUNK_DST="sip:10.0.0.5:5060"',
        ],
    ],
)
def test_config_is_valid_with_command_line_defines(tmp_path: Path, defines: list[str]) -> None:
    argv = ["kamailio", "-c", "-f", str(CONFIG)]
    for d in defines:
        argv += ["-A", d]
    res = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    if defines:
        assert "127.0.0.1 [127.0.0.1]:15070" in res.stdout + res.stderr
