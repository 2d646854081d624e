"""LINKCALL_MEDIA_WORKERS: the control protocol (pure), and real worker processes on loopback
with paced RTP phones: each party hears the other two, the recording is sealed, key presses
arrive, and a killed worker ends only its own calls (media_lost) with its recording recovered."""

from __future__ import annotations

import asyncio
import os
import signal
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from calls.media_workers import protocol as p
from calls.media_workers.remote import (
    MediaWorkerLost,
    RemoteConference,
    RemoteEndpoint,
    RemoteMediaEngine,
    RemoteRecording,
    _Worker,
    split_ports,
)
from telephony.media.errors import EndpointClosed
from telephony.media.playback import PlaybackOutcome
from telephony.media.stats import LegStats
from telephony.types import Codec, Direction, DtmfDigit, NegotiatedMedia
from tests.media.rtp_peer import PacedPeer, level_db, tone_pcm

TONES = {"caller": 500.0, "dispatcher": 1100.0, "unit": 1900.0}


# -- the protocol -----------------------------------------------------------------------------


def test_messages_round_trip_as_one_line_each() -> None:
    media = NegotiatedMedia(
        "127.0.0.1", 20000, "10.0.0.9", 4000, Codec.PCMA, 101, Direction.RECVONLY
    )
    digit = DtmfDigit("#", "inband", 12.5, 80)
    stats = LegStats(packets_received=7, packets_lost=1, jitter_ms=0.5, dtmf_received=2)
    line = p.encode(
        {
            "op": "configure",
            "e": 3,
            "media": p.media_to_wire(media),
            "d": p.digit_to_wire(digit),
            "s": p.stats_to_wire(stats),
        }
    )
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    back = p.decode(line)
    assert p.media_from_wire(back["media"]) == media
    assert p.digit_from_wire(back["d"]) == digit
    assert p.stats_from_wire(back["s"]) == stats


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"op": "format_disk"}\n', "unknown op"),
        (b'{"op": "open", "e": 1}\n', "without an integer id"),
        (b'{"op": "reply", "id": "7"}\n', "without an integer id"),
        (b"\xff\xfe\n", "not JSON"),
    ],
)
def test_a_bad_line_is_refused_with_what_is_wrong(line: bytes, says: str) -> None:
    with pytest.raises(p.ProtocolError, match=says):
        p.decode(line)


def test_bad_values_are_refused() -> None:
    with pytest.raises(p.ProtocolError, match="8 fields"):
        p.media_from_wire(["127.0.0.1", 1])
    with pytest.raises(p.ProtocolError, match="unknown source"):
        p.digit_from_wire(["1", "smoke", 0.0, 0])
    with pytest.raises(ValueError, match="not a DTMF digit"):
        p.digit_from_wire(["x", "info", 0.0, 0])
    with pytest.raises(p.ProtocolError, match="unknown op"):
        p.encode({"op": "nope"})


def test_port_range_is_cut_into_even_aligned_shares() -> None:
    shares = split_ports((20001, 29999), 2)
    assert shares[0][0] == 20002
    for lo, hi in shares:
        assert lo % 2 == 0 and hi % 2 == 1 and 20001 <= lo < hi <= 29999
    assert shares[0][1] < shares[1][0]
    with pytest.raises(ValueError, match="too small"):
        split_ports((20000, 20003), 3)


async def test_control_of_a_leg_on_a_lost_worker_never_raises_and_never_hangs(
    tmp_path: Path,
) -> None:
    """The runner keeps controlling a leg until it learns it ended: nothing of that may fail
    it (an exception in a leg watcher), and nothing may wait for a reply that never comes."""
    worker = _Worker(0, (40000, 40099), "127.0.0.1")  # never started: as good as lost
    ep = RemoteEndpoint(worker, 1, "flow:caller", 40000)
    worker.endpoints[1] = ep
    conf = RemoteConference(worker, 2, "flow:main")
    conf.add(ep, "caller")
    worker.alive = True
    worker.lose("test")
    assert ep.lost and ep.conference is None
    media = NegotiatedMedia("127.0.0.1", 40000, "127.0.0.1", 4000, Codec.PCMU, 101)
    ep.configure(media)
    ep.inject_dtmf(DtmfDigit("1", "info", 0.0))
    ep.stop_playback()
    conf.add(ep, "caller")
    conf.mute(ep, True)
    conf.hold(ep, True)
    conf.remove(ep)
    assert await ep.play(tmp_path / "prompt.wav") is PlaybackOutcome.CLOSED
    with pytest.raises(EndpointClosed):
        await ep.send_dtmf("1")
    assert [d async for d in ep.digits] == []
    recording = conf.record(tmp_path, "rec-lost")
    assert isinstance(recording, RemoteRecording)
    with pytest.raises(MediaWorkerLost, match="not recoverable"):  # it never started
        await recording.finish()


# -- real worker processes ----------------------------------------------------------------------


@pytest.fixture
async def engine() -> AsyncIterator[RemoteMediaEngine]:
    eng = RemoteMediaEngine("127.0.0.1", (41000, 41999), workers=2)
    await eng.start()
    try:
        yield eng
    finally:
        await eng.stop()


async def _call(
    engine: RemoteMediaEngine, flow: str, root: Path
) -> tuple[dict[str, PacedPeer], dict[str, RemoteEndpoint], object]:
    peers: dict[str, PacedPeer] = {}
    eps: dict[str, RemoteEndpoint] = {}
    for role in TONES:
        eps[role] = await engine.open_endpoint(f"{flow}:{role}")
    conf = engine.create_conference(f"{flow}:main")
    for role, hz in TONES.items():
        peer = PacedPeer(role, tone_pcm(hz), Codec.PCMU)
        peer.bind()
        eps[role].configure(peer.media_for(eps[role].local_port))
        conf.add(eps[role], role)
        peer.start(("127.0.0.1", eps[role].local_port))
        peers[role] = peer
    recording = conf.record(root, f"rec-{flow}")
    return peers, eps, recording


async def test_two_calls_on_two_workers_hear_each_other_record_and_take_digits(
    engine: RemoteMediaEngine, tmp_path: Path
) -> None:
    a_peers, a_eps, a_rec = await _call(engine, "flowa", tmp_path)
    b_peers, b_eps, b_rec = await _call(engine, "flowb", tmp_path)
    assert len({ep._worker.index for ep in a_eps.values()}) == 1  # a call lives on one worker
    assert a_eps["caller"]._worker is not b_eps["caller"]._worker  # one call per worker
    await asyncio.sleep(1.5)
    b_peers["unit"].send_digit("5")
    b_peers["caller"].send_digit("#")
    async with asyncio.timeout(3):
        assert (await b_eps["unit"].digits.get()).digit == "5"
        assert (await b_eps["caller"].digits.get()).digit == "#"
    handle = a_eps["caller"].play(tmp_path / "missing.wav")
    async with asyncio.timeout(3):
        assert await handle is PlaybackOutcome.CLOSED  # no such prompt: ended, not hung
    await asyncio.sleep(1.0)
    assert a_eps["dispatcher"].stats.packets_received > 50  # the worker reports counters
    for peers in (a_peers, b_peers):
        for role, peer in peers.items():
            heard = peer.audio(skip_s=0.5)
            for other, hz in TONES.items():
                if other != role:
                    assert level_db(heard, hz) > -16, f"{role} misses {other}"
                else:
                    assert level_db(heard, hz) < -50, f"{role} hears itself"
    for rec, eps, peers in ((a_rec, a_eps, a_peers), (b_rec, b_eps, b_peers)):
        info, error = await rec.finish()  # type: ignore[attr-defined]
        assert error is None and not info.interrupted
        assert set(info.tracks) == {"mixed", *TONES}
        for role, hz in TONES.items():
            with wave.open(str(info.tracks[role].path)) as w:
                pcm = w.readframes(w.getnframes())
            assert level_db(pcm[8000:], hz) > -16
        for ep in eps.values():
            await ep.close()
        for peer in peers.values():
            await peer.stop()


async def test_a_killed_worker_ends_its_calls_only_and_its_recording_is_recovered(
    engine: RemoteMediaEngine, tmp_path: Path
) -> None:
    a_peers, a_eps, a_rec = await _call(engine, "flowa", tmp_path)
    b_peers, b_eps, b_rec = await _call(engine, "flowb", tmp_path)
    await asyncio.sleep(2.0)  # a flush or two reach the disk
    victim = a_eps["caller"]._worker
    assert victim.proc is not None
    os.kill(victim.proc.pid, signal.SIGKILL)
    async with asyncio.timeout(5):
        async for _ in a_eps["unit"].digits:  # the stream ends: the runner ends the leg
            pass
    assert all(ep.lost for ep in a_eps.values())
    assert not any(ep.lost for ep in b_eps.values())
    info, error = await a_rec.finish()  # type: ignore[attr-defined]
    assert error is not None and "media worker lost" in error
    assert info.interrupted and info.duration_s >= 1.0  # what reached the disk is sealed
    # the other call goes on, and the lost slot gets a new worker
    before = b_peers["caller"].received[-1].arrival
    await asyncio.sleep(1.0)
    assert b_peers["caller"].received[-1].arrival > before
    for _ in range(50):  # a new worker in the lost one's slot, within 10 s
        if all(w.alive for w in engine.workers):
            break
        await asyncio.sleep(0.2)
    assert all(w.alive for w in engine.workers)
    c_ep = await engine.open_endpoint("flowc:caller")
    assert c_ep.local_port
    info_b, error_b = await b_rec.finish()  # type: ignore[attr-defined]
    assert error_b is None and not info_b.interrupted
    for peer in (*a_peers.values(), *b_peers.values()):
        await peer.stop()


async def test_a_hung_worker_is_declared_lost_and_replaced(tmp_path: Path) -> None:
    """SIGSTOP: the process lives but says nothing; after `silent_s` it is killed and its legs
    end, instead of calls sitting in silence until someone notices."""
    eng = RemoteMediaEngine("127.0.0.1", (42000, 42999), workers=2, silent_s=2.0)
    await eng.start()
    try:
        peers, eps, _ = await _call(eng, "flowh", tmp_path)
        victim = eps["caller"]._worker
        assert victim.proc is not None
        os.kill(victim.proc.pid, signal.SIGSTOP)
        stopped = asyncio.get_running_loop().time()
        async with asyncio.timeout(8):
            async for _ in eps["caller"].digits:
                pass
        assert 1.5 <= asyncio.get_running_loop().time() - stopped <= 6.0
        assert all(ep.lost for ep in eps.values())
        for _ in range(50):
            if all(w.alive for w in eng.workers):
                break
            await asyncio.sleep(0.2)
        assert all(w.alive for w in eng.workers)
        for peer in peers.values():
            await peer.stop()
    finally:
        await eng.stop()


# -- the worker's log lines -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_worker_logs_in_the_services_format_level_and_node(fmt: str) -> None:
    """A media worker's lines look like the service's (LINKCALL_LOG_FORMAT, the node's name) and
    say which process they come from; before, workers always wrote their own plain text, so a
    JSON log pipeline got lines it could not parse, without the node."""
    import json
    import subprocess
    import sys

    from calls.log_format import WORKER_LOG_ENV, WorkerLog
    from lab import ports

    rtp = ports.rtp_range(10)
    env = {**os.environ, WORKER_LOG_ENV: WorkerLog("INFO", fmt, "node-7").encode()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "calls.media_workers.worker", "127.0.0.1", f"{rtp.lo}-{rtp.hi}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and b'"ready"' in proc.stdout.readline()
        # a line the worker cannot read is logged (ERROR) and skipped; the number in it masked
        _, err = proc.communicate(b'{"op": "nonsense", "number": "+8613912345601"}\n', timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ports.release(rtp)
    lines = [x for x in err.decode().splitlines() if "bad command" in x]
    assert len(lines) == 1, err.decode()
    if fmt == "json":
        line = json.loads(lines[0])
        assert line["level"] == "ERROR" and line["node"] == "node-7", line
        assert line["process"] == f"media-worker[{proc.pid}]", line
        assert line["logger"] == "calls.media_workers.worker", line
    else:
        assert f" ERROR   media-worker[{proc.pid}] calls.media_workers.worker: " in lines[0]
    assert "13912345601" not in err.decode()
