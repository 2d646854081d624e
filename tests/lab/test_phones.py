"""baresip phones: reject busy, DTMF, wrong password, TCP, direct calls, clean stop."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lab import ports
from lab.audio import make_tone_wav, tone_report
from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio

pytestmark = pytest.mark.integration


def test_busy_reject_is_seen_by_caller(phone_factory: Callable[..., BaresipPhone]) -> None:
    a = phone_factory("2001", tone_hz=400)
    b = phone_factory("2002", tone_hz=1000, auto_answer=False)
    since = a.dial("2002")
    b.wait_incoming(10)
    assert b.call_count() == 1
    b.hangup()  # a ringing call is rejected with 486
    closed = a.wait_closed(10, since)
    assert str(closed.get("param", "")).startswith("486")
    assert b.received_recordings() == []


def test_manual_answer_with_accept(phone_factory: Callable[..., BaresipPhone]) -> None:
    a = phone_factory("2001", tone_hz=400)
    b = phone_factory("2002", tone_hz=1000, auto_answer=False)
    since = a.dial("2002")
    b.wait_incoming(10)
    time.sleep(0.3)
    assert not any(e["type"] == "CALL_ESTABLISHED" for e in a.events[since:])
    b.accept()
    a.wait_established(10, since)
    b.hangup()
    a.wait_closed(10, since)


def test_dtmf_rfc4733_reaches_the_other_phone(
    phone_factory: Callable[..., BaresipPhone],
) -> None:
    a = phone_factory("2001", tone_hz=400)
    b = phone_factory("2002")
    since_b = b.event_count()
    since = a.dial("2002")
    a.wait_established(10, since)
    b.wait_established(10, since_b)
    a.send_dtmf("19#")
    digits = []
    for _ in range(3):
        ev = b.wait_event("CALL_DTMF_START", 5, since_b)
        since_b = b.events.index(ev) + 1
        digits.append(ev["param"])
    a.hangup()
    assert digits == ["1", "9", "#"]


def test_wrong_password_fails_to_register(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone]
) -> None:
    p = phone_factory("2008", password="wrong", wait_registered=False)
    p.wait_event("REGISTER_FAIL", 10)
    assert not p.is_registered()
    assert not kamailio.registered("2008")


def test_tcp_phone_calls_udp_phone(
    kamailio: Kamailio, phone_factory: Callable[..., BaresipPhone]
) -> None:
    a = phone_factory("2003", tone_hz=400, transport="tcp")
    b = phone_factory("2004", tone_hz=1000)
    assert any("transport=tcp" in c for c in kamailio.contacts("2003"))
    since_b = b.event_count()
    since = a.dial("2004")
    a.wait_established(10, since)
    b.wait_established(10, since_b)
    time.sleep(1.5)
    a.hangup()
    b.wait_closed(10, since_b)
    levels = tone_report(b.received_recordings()[0], [400, 1000], start=0.3)
    assert levels[400] > -25 and levels[1000] < -50, levels


def test_unregistered_phones_call_each_other_directly(
    phone_factory: Callable[..., BaresipPhone],
) -> None:
    a = phone_factory("5001", tone_hz=400, kamailio=False)
    b = phone_factory("5002", tone_hz=1000, kamailio=False)
    since = a.dial(b.direct_uri)
    a.wait_established(10, since)
    time.sleep(1.0)
    a.hangup()
    b.wait_closed(10)
    levels = tone_report(a.received_recordings()[0], [400, 1000], start=0.3)
    assert levels[1000] > -25 and levels[400] < -50, levels


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes but should have been reaped
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


def test_stop_leaves_no_process_behind(
    kamailio_factory: Callable[..., Kamailio], phone_factory: Callable[..., BaresipPhone]
) -> None:
    held_before = ports.held()
    k = kamailio_factory()
    p = phone_factory("2001", kamailio=k)
    assert ports.held() == held_before + 3  # kamailio's block, the phone's SIP block and RTP
    assert k.pid is not None and p.pid is not None
    workers = _children(k.pid)
    assert len(workers) >= 3  # kamailio forks UDP/TCP receivers, timers, ctl
    pids = [k.pid, p.pid, *workers]
    p.stop()
    k.stop()
    assert [pid for pid in pids if _alive(pid)] == []
    assert ports.held() == held_before  # ports given back (after a short quarantine)
    p.stop()  # idempotent
    k.stop()


def test_pcma_call_with_given_wav_in_a_named_domain(
    lab_dir: Path,
    kamailio_factory: Callable[..., Kamailio],
    phone_factory: Callable[..., BaresipPhone],
) -> None:
    k = kamailio_factory(domain="pbx.lab")
    chord = make_tone_wav(lab_dir / "chord.wav", [600, 1400], seconds=30, amplitude=0.2)
    a = phone_factory("2001", wav=chord, codecs=("pcma",), kamailio=k, domain="pbx.lab")
    b = phone_factory("2002", tone_hz=1000, codecs=("pcma",), kamailio=k, domain="pbx.lab")
    assert a.aor == f"sip:2001@pbx.lab:{k.udp_port}"
    since_b = b.event_count()
    since = a.dial("2002")
    a.wait_established(10, since)
    time.sleep(1.5)
    a.hangup()
    b.wait_closed(10, since_b)
    heard = tone_report(b.received_recordings()[0], [600, 1000, 1400], start=0.3)
    assert heard[600] > -30 and heard[1400] > -30 and heard[1000] < -50, heard


def test_codec_mismatch_is_refused_with_488(phone_factory: Callable[..., BaresipPhone]) -> None:
    a = phone_factory("2001", codecs=("pcmu",))
    phone_factory("2002", codecs=("pcma",))
    since = a.dial("2002")
    closed = a.wait_closed(10, since)
    assert str(closed["param"]).startswith("488"), closed


def test_call_ends_when_the_microphone_file_ends(
    phone_factory: Callable[..., BaresipPhone],
) -> None:
    a = phone_factory("2001", tone_hz=400, tone_seconds=2)
    phone_factory("2002")
    since = a.dial("2002")
    a.wait_established(10, since)
    t0 = time.monotonic()
    closed = a.wait_closed(10, since)
    assert closed["param"] == "end of file"
    assert 1.0 < time.monotonic() - t0 < 4.0
