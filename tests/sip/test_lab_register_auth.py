"""Registration against Kamailio challenging REGISTER with 407, with qop=auth, MD5 and SHA-256
(issue 3: "registers to Kamailio through a 401 challenge and through a 407 challenge")."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from lab.kamailio import Kamailio
from lab.sipprobe import SipProbe
from telephony.sip.errors import RegistrationAuthError

from .conftest import UAFactory

pytestmark = [pytest.mark.integration]


@pytest.mark.parametrize(
    ("register_auth", "algorithm"), [("407", "MD5"), ("407", "SHA-256"), ("401", "SHA-256")]
)
async def test_registers_through_the_challenge_with_qop(
    kamailio_factory: Callable[..., Kamailio],
    ua_factory: UAFactory,
    register_auth: str,
    algorithm: str,
) -> None:
    kam = kamailio_factory(register_auth=register_auth, qop=True, algorithm=algorithm, log_level=3)
    with SipProbe("127.0.0.1", kam.udp_port) as probe:  # what Kamailio challenges with
        challenge = probe.request(
            "REGISTER", f"sip:{kam.domain}", from_user="1003", to_uri="sip:1003@" + kam.domain
        )
    assert challenge.status == int(register_auth), challenge.status_line
    header = challenge.headers[
        "proxy-authenticate" if register_auth == "407" else "www-authenticate"
    ]
    assert 'qop="auth"' in header and f"algorithm={algorithm}" in header, header
    ua = await ua_factory(kam, user="1003")
    assert ua.registered and kam.registered("1003")
    log = kam.log_text()
    assert f"challenge {register_auth} REGISTER" in log, log[-2000:]
    await ua.stop()
    assert not kam.registered("1003")  # unregistered through the same challenge


async def test_a_wrong_password_against_407_fails_fast_and_clearly(
    kamailio_factory: Callable[..., Kamailio], ua_factory: UAFactory
) -> None:
    kam = kamailio_factory(register_auth="407", qop=True)
    started = time.monotonic()
    with pytest.raises(RegistrationAuthError) as info:
        await ua_factory(kam, user="1004", password="wrong")
    assert time.monotonic() - started < 5
    assert info.value.status == 407
    assert not kam.registered("1004")
