"""SIPp peers: trunk answerer streaming a tone, rejecter, authenticated caller with DTMF."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.audio import make_ulaw_raw, tone_report
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from lab.sipp import Sipp

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


def test_trunk_call_to_sipp_answerer_streams_its_tone(
    lab_dir: Path,
    kamailio_factory: Callable[..., Kamailio],
    phone_factory: Callable[..., BaresipPhone],
) -> None:
    ulaw = make_ulaw_raw(lab_dir / "tone1800.ulaw", 1800, seconds=5)
    uas = Sipp.answerer(lab_dir / "uas", media="stream", ulaw=ulaw, calls=1)
    k = kamailio_factory(trunk_prefix="3", trunk_target=(HOST, uas.port))
    uas.start()
    try:
        phone = phone_factory("2001", tone_hz=400, kamailio=k)
        since = phone.dial("3001")
        phone.wait_established(10, since)
        time.sleep(1.5)
        phone.hangup()
        phone.wait_closed(10, since)
        assert uas.wait(10) == 0, uas.log_text()
        assert uas.counter("SuccessfulCall") == 1
    finally:
        uas.stop()
    levels = tone_report(phone.received_recordings()[0], [400, 1800], start=0.3)
    assert levels[1800] > -25 and levels[400] < -50, levels


def test_trunk_rejecter_busy_is_seen_by_phone(
    lab_dir: Path,
    kamailio_factory: Callable[..., Kamailio],
    phone_factory: Callable[..., BaresipPhone],
) -> None:
    uas = Sipp.rejecter(lab_dir / "busy", code=486, reason="Busy Here")
    k = kamailio_factory(trunk_prefix="3", trunk_target=(HOST, uas.port))
    with uas:
        phone = phone_factory("2001", kamailio=k)
        since = phone.dial("3002")
        closed = phone.wait_closed(10, since)
    assert str(closed["param"]).startswith("486"), closed


def test_sipp_caller_authenticates_and_sends_dtmf(
    lab_dir: Path, kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone]
) -> None:
    phone = phone_factory("2005", tone_hz=400)
    uac = Sipp.caller(
        lab_dir / "uac",
        target=(HOST, kamailio.udp_port),
        service="2005",
        from_user="1000",
        auth=("1000", "pw1000"),
        dtmf="37#",
        hold_ms=1000,
    )
    since = phone.event_count()
    with uac:
        phone.wait_established(10, since)
        phone.wait_closed(15, since)
        assert uac.wait(15) == 0, uac.log_text() + uac.errors_text()
    digits = [e["param"] for e in phone.events[since:] if e["type"] == "CALL_DTMF_START"]
    assert digits == ["3", "7", "#"]
    assert uac.counter("SuccessfulCall") == 1


def test_sipp_caller_echo_returns_the_phones_own_audio(
    lab_dir: Path, kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone]
) -> None:
    phone = phone_factory("2006", tone_hz=400)
    uac = Sipp.caller(
        lab_dir / "uac",
        target=(HOST, kamailio.udp_port),
        service="2006",
        from_user="1001",
        auth=("1001", "pw1001"),
        media="echo",
        hold_ms=1500,
    )
    since = phone.event_count()
    with uac:
        phone.wait_closed(15, since)
        assert uac.wait(15) == 0, uac.log_text() + uac.errors_text()
    levels = tone_report(phone.received_recordings()[0], [400, 1000], start=0.3)
    assert levels[400] > -25 and levels[1000] < -50, levels


def test_dtmf_digits_out_of_capture_order_are_refused(lab_dir: Path) -> None:
    with pytest.raises(ValueError, match="order"):
        Sipp.caller(lab_dir, target=(HOST, 9), service="2001", dtmf="42")
    with pytest.raises(ValueError, match="order"):
        Sipp.caller(lab_dir, target=(HOST, 9), service="2001", dtmf="11")


def test_sipp_caller_to_answerer_with_answer_delay(lab_dir: Path) -> None:
    ulaw = make_ulaw_raw(lab_dir / "tone.ulaw", 1000, seconds=3)
    uas = Sipp.answerer(lab_dir / "uas", media="echo", answer_delay_ms=1200, calls=1)
    with uas:
        uac = Sipp.caller(
            lab_dir / "uac",
            target=(HOST, uas.port),
            service="110",
            media="stream",
            ulaw=ulaw,
            hold_ms=500,
        )
        t0 = time.monotonic()
        with uac:
            assert uac.wait(20) == 0, uac.log_text() + uac.errors_text()
        elapsed = time.monotonic() - t0
        assert uas.wait(10) == 0, uas.log_text() + uas.errors_text()
    assert elapsed >= 1.2 + 0.5
    assert uac.counter("SuccessfulCall") == 1
    assert uas.counter("SuccessfulCall") == 1
    # INVITE->200 time, measured by sipp as rtd "setup" (ms)
    setup = uac.response_time("setup")
    assert setup is not None and 1.2 <= setup < 3.0, uac.stats()
