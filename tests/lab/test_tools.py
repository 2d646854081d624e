"""Lab tooling without SIP peers: ports, managed processes, audio measurement."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import sys
import time
import wave
from pathlib import Path

import pytest

from lab import ports
from lab.audio import (
    band_level_db,
    make_tone_wav,
    make_ulaw_raw,
    tone_report,
    total_level_db,
    wav_complete,
    wav_duration,
)
from lab.process import ManagedProcess, ProcessError


def test_sip_blocks_are_distinct_and_free_on_udp_and_tcp() -> None:
    starts = [ports.sip_port() for _ in range(20)]
    assert len(set(starts)) == 20
    assert all(s % ports.SIP_BLOCK == 0 for s in starts)
    assert all(abs(a - b) >= ports.SIP_BLOCK for a in starts for b in starts if a != b)
    for start in starts[:3]:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            for p in (start, start + 1, start + 5):
                with socket.socket(socket.AF_INET, kind) as s:
                    # as the peers' listeners do (TIME_WAIT leftovers of earlier tests)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", p))
    for start in starts:
        ports.release(start)


def _two_blocks(monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Restrict SIP allocation to two adjacent blocks that are free right now."""
    monkeypatch.setattr(ports, "QUARANTINE_S", 0.0)
    monkeypatch.setattr(ports, "LEASE_S", 0.0)
    for _ in range(100):
        a = ports.sip_port()
        b = a + ports.SIP_BLOCK
        neighbour_ok = b + ports.SIP_BLOCK - 1 <= ports.SIP_PORTS[1] and ports.claim(b)
        ports.release(a)
        if neighbour_ok:
            ports.release(b)
        with ports._lock:
            ports._purge_expired()  # drop our own reservations at once
        if neighbour_ok:
            monkeypatch.setattr(ports, "SIP_PORTS", (a, b + ports.SIP_BLOCK - 1))
            return a, b
    raise AssertionError("no two adjacent free SIP blocks")


def test_sip_block_skips_a_busy_port(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _two_blocks(monkeypatch)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", first + 1))  # e.g. someone's TCP listener
        busy.listen()
        start = ports.sip_port()
    ports.release(start)
    assert start == second


def test_sip_block_reserved_by_another_process_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = _two_blocks(monkeypatch)
    # another process's reservation: an exclusive flock on the block's lock file
    fd = os.open(ports.LOCK_DIR / f"{first}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        start = ports.sip_port()
        ports.release(start)
        assert start == second
    finally:
        os.close(fd)


def test_plain_allocation_is_a_lease_and_peers_hold_until_release() -> None:
    before = ports.held()
    start = ports.sip_port()
    assert ports.held() == before  # a plain allocation is only leased (LEASE_S)
    assert ports.claim(start)  # a peer takes it over until release()
    assert ports.held() == before + 1
    assert not ports.claim(start)  # already held here
    ports.release(start)
    assert ports.held() == before
    assert ports.claim(start)  # still in quarantine: a restarted peer takes it back
    ports.release(start)


def test_rtp_ranges_are_even_and_disjoint() -> None:
    ranges = [ports.rtp_range(20) for _ in range(10)]
    assert all(r.lo % 2 == 0 and len(r) == 20 for r in ranges)
    flat = [p for r in ranges for p in range(r.lo, r.hi + 1)]
    assert len(flat) == len(set(flat))
    with pytest.raises(ValueError):
        ports.rtp_range(3)
    for r in ranges:
        ports.release(r)


def test_managed_process_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('u' + 'p!', flush=True); time.sleep(60)"
    )
    p = ManagedProcess("stubborn", [sys.executable, "-c", code], tmp_path / "p.log")
    p.start()
    p.wait_ready(lambda: "up!" in p.log_text(), 10, "'up!'")
    t0 = time.monotonic()
    rc = p.stop(timeout=0.5)
    assert rc == -signal.SIGKILL
    assert time.monotonic() - t0 < 5
    assert not p.running()
    assert p.stop() == rc  # idempotent


def test_managed_process_reports_early_exit_with_its_log(tmp_path: Path) -> None:
    p = ManagedProcess(
        "quitter",
        [sys.executable, "-c", "print('bad config'); raise SystemExit(3)"],
        tmp_path / "q.log",
    )
    p.start()
    with pytest.raises(ProcessError, match="bad config"):
        p.wait_ready(lambda: False, 10, "readiness")
    assert p.returncode == 3
    p.stop()


def test_tone_levels_are_measured_in_dbfs(tmp_path: Path) -> None:
    wav = make_tone_wav(tmp_path / "t.wav", 1000, seconds=2, amplitude=0.5)
    assert wav_duration(wav) == pytest.approx(2.0)
    assert wav_complete(wav)
    with wave.open(str(wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
    # a sine of amplitude 0.5 has an RMS of 0.354: -9.0 dBFS
    assert band_level_db(wav, 1000) == pytest.approx(-9.0, abs=0.5)
    assert total_level_db(wav) == pytest.approx(-9.0, abs=0.5)
    assert band_level_db(wav, 400) < -60
    report = tone_report(
        make_tone_wav(tmp_path / "two.wav", [400, 1800], 1, amplitude=0.2), [400, 1000, 1800]
    )
    assert report[400] == pytest.approx(report[1800], abs=1.0)
    assert report[1000] < report[400] - 50


def test_silence_and_truncated_header(tmp_path: Path) -> None:
    silent = make_tone_wav(tmp_path / "s.wav", None, seconds=1)
    assert band_level_db(silent, 1000) <= -100
    data = silent.read_bytes()
    open_ended = tmp_path / "open.wav"
    # a writer that has not closed the file yet: data chunk size still 0
    open_ended.write_bytes(data[:40] + b"\0\0\0\0" + data[44:])
    assert not wav_complete(open_ended)


def test_ulaw_file_for_sipp(tmp_path: Path) -> None:
    raw = make_ulaw_raw(tmp_path / "t.ulaw", 1800, seconds=1)
    assert raw.stat().st_size == 8000
