"""The 401 mode works for pyVoIP 1.6.8 (a test peer elsewhere): register, call both ways."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lab import ports
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio

pytestmark = pytest.mark.integration

voip = pytest.importorskip("pyVoIP.VoIP")


@pytest.fixture
def pyvoip_1000(kamailio_401: Kamailio) -> Iterator[Any]:
    rtp = ports.rtp_range(20)
    answered: list[Any] = []

    def on_call(call: Any) -> None:
        answered.append(call)
        call.answer()

    phone = voip.VoIPPhone(
        "127.0.0.1",
        kamailio_401.udp_port,
        "1000",
        "pw1000",
        callCallback=on_call,
        myIP="127.0.0.1",
        sipPort=ports.sip_port(),
        rtpPortLow=rtp.lo,
        rtpPortHigh=rtp.hi,
    )
    phone.answered = answered
    phone.start()
    try:
        yield phone
    finally:
        phone.stop()


def test_pyvoip_registers_and_calls_a_phone_in_401_mode(
    kamailio_401: Kamailio, pyvoip_1000: Any, phone_factory: Callable[..., BaresipPhone]
) -> None:
    kamailio_401.wait_registered("1000", 5)
    phone = phone_factory("2001", tone_hz=400, kamailio=kamailio_401)
    call = pyvoip_1000.call("2001")
    deadline = time.monotonic() + 10
    while call.state != voip.CallState.ANSWERED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert call.state == voip.CallState.ANSWERED
    # (the phone never reports CALL_ESTABLISHED: pyVoIP's ACK carries an invented To-tag)
    phone.wait_event("CALL_RTPESTAB", 5)
    call.hangup()  # pyVoIP's BYE ignores Record-Route: Kamailio must still deliver it
    phone.wait_closed(5)


def test_phone_calls_pyvoip_in_401_mode(
    kamailio_401: Kamailio, pyvoip_1000: Any, phone_factory: Callable[..., BaresipPhone]
) -> None:
    kamailio_401.wait_registered("1000", 5)
    phone = phone_factory("2002", tone_hz=1000, kamailio=kamailio_401)
    since = phone.dial("1000")
    phone.wait_established(10, since)
    assert len(pyvoip_1000.answered) == 1
    phone.hangup()
    phone.wait_closed(5, since)
