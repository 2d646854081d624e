"""Digest authentication: RFC 2617 / RFC 7616 test vectors, nc counting, 401 and 407 values."""

from __future__ import annotations

import pytest

from telephony.sip.digest import (
    Challenge,
    DigestClient,
    choose,
    compute_response,
    parse_auth_params,
    verify,
)
from telephony.sip.errors import AuthError


def test_rfc2617_md5_vector() -> None:
    assert (
        compute_response(
            algorithm="MD5",
            username="Mufasa",
            realm="testrealm@host.com",
            password="Circle Of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


@pytest.mark.parametrize(
    "algorithm, expected",
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    assert (
        compute_response(
            algorithm=algorithm,
            username="Mufasa",
            realm="http-auth@example.org",
            password="Circle of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop="auth",
            nc="00000001",
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        )
        == expected
    )


def test_challenge_parse_kamailio_style() -> None:
    c = Challenge.parse(
        'Digest realm="127.0.0.1", nonce="ZxY1a2b3", qop="auth,auth-int", opaque="o1"'
    )
    assert (c.realm, c.nonce, c.algorithm, c.qop, c.opaque) == (
        "127.0.0.1",
        "ZxY1a2b3",
        "MD5",
        ("auth", "auth-int"),
        "o1",
    )
    assert not c.stale
    assert Challenge.parse('Digest realm="r", nonce="n", stale=TRUE').stale


@pytest.mark.parametrize(
    "value",
    [
        'Basic realm="x"',
        'Digest realm="x"',
        'Digest realm="x", nonce="n", algorithm=SHA-512-256',
        'Digest realm="x, nonce=n',
    ],
)
def test_bad_challenges(value: str) -> None:
    with pytest.raises(AuthError):
        Challenge.parse(value)


def test_choose_prefers_sha256() -> None:
    md5 = Challenge(realm="r", nonce="n1", algorithm="MD5", qop=("auth",))
    sha = Challenge(realm="r", nonce="n2", algorithm="SHA-256", qop=("auth",))
    assert choose([md5, sha]) is sha
    with pytest.raises(AuthError):
        choose([Challenge(realm="r", nonce="n", qop=("auth-int",))])


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "MD5-sess"])
@pytest.mark.parametrize("qop", [("auth",), ()])
def test_client_answer_verifies(algorithm: str, qop: tuple[str, ...]) -> None:
    client = DigestClient("1000", "pw1000")
    ch = Challenge(
        realm="127.0.0.1", nonce="abc", algorithm=algorithm.upper(), qop=qop, opaque="op"
    )
    value = client.authorization(ch, "REGISTER", "sip:127.0.0.1")
    params = parse_auth_params(value.removeprefix("Digest "))
    assert params["username"] == "1000"
    assert params["opaque"] == "op"
    assert verify(value, method="REGISTER", password="pw1000")
    assert not verify(value, method="REGISTER", password="wrong")
    assert not verify(value, method="INVITE", password="pw1000")


def test_nonce_count_increments_per_nonce() -> None:
    client = DigestClient("u", "p")
    ch = Challenge(realm="r", nonce="n", qop=("auth",))
    ncs = [
        parse_auth_params(client.authorization(ch, "INVITE", "sip:x")[7:])["nc"] for _ in range(3)
    ]
    assert ncs == ["00000001", "00000002", "00000003"]
    other = Challenge(realm="r", nonce="n2", qop=("auth",))
    assert parse_auth_params(client.authorization(other, "INVITE", "sip:x")[7:])["nc"] == "00000001"


def test_password_not_in_repr() -> None:
    assert "secret" not in repr(DigestClient("u", "secret"))
