"""Media load benchmark: N concurrent three-way conferences with paced RTP phones on loopback.

    .venv/bin/python benchmarks/media_load.py --calls 50,150,300 --seconds 20 --baseline 10,30,60

For each N, two processes run side by side (one per core on a 2-core machine):
- the bridge under test: our MediaEngine (one event loop, one 20 ms ticker) with N conferences
  of three legs, each recorded by the real recordings.RecordingWriter (flushed once a second
  in a worker thread), or a pyVoIP 1.6.8 bridge (three RTPClients per call plus a mixing
  thread per call: what a user would otherwise build) with the same recorder;
- the phones: 3N RTP streams (a different tone per party) sent on absolute 20 ms deadlines,
  receiving what the bridge sends back with kernel receive timestamps (SO_TIMESTAMPNS), so the
  phones' own scheduling does not blur the figures. By default (`--phones batched`,
  benchmarks/rtp_phones.py) the streams share a few sockets and each tick is one sendmmsg and
  a few recvmmsg per socket, for ~15-20 % of a core at 400 calls; `--phones per-stream` is the
  older loop with a socket and two Python system calls per stream per tick (50-65 % of a core
  at 300-400 calls, which on a 2-core machine took the CPU the bridge under test needed).

Per N it prints: packets expected (by time) and received, loss (RFC 3550, by sequence), the
bridge's send gaps as seen on arrival (mean, p99, max, share over 30 ms), interarrival jitter
(RFC 3550, mean and max over streams), the bridge's CPU % of one core, its RSS, and RSS per call
above the idle process, and the machine's 1-minute load average at the end of the window (the
figures depend on it on a shared machine). Nothing here runs in the test suite.

Environment knobs (bridge process): MEDIA_LOAD_FLUSH_S (recorder flush interval, default 1.0),
MEDIA_LOAD_SWITCH_INTERVAL (sys.setswitchinterval), MEDIA_LOAD_PROFILE (cProfile output file).

`--workers N` (N > 1) runs ours as the service does with LINKCALL_MEDIA_WORKERS=N: the bridge
process is the controller (calls.media_workers.RemoteMediaEngine), each call lives in one of N
worker processes with its recorder (placed on the worker with the fewest legs); CPU and RSS are
summed over the controller and the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SO_TIMESTAMPNS = 35  # Linux; SCM_TIMESTAMPNS has the same value
TONES = (500.0, 1100.0, 1900.0)
ROLES = ("caller", "seat", "unit")
TICK = 0.02


# ---------------------------------------------------------------------------------------------
# helpers shared by the processes


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _send(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _recv() -> Any:
    line = sys.stdin.readline()
    if not line:
        raise SystemExit("driver went away")
    return json.loads(line)


def _free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class NullTap:
    """Costs what a recorder's hand-off costs at the least: keeps references to the frames."""

    def __init__(self) -> None:
        self.last: tuple[bytes, Mapping[str, bytes]] | None = None

    def write(self, mixed: bytes, tracks: Mapping[str, bytes]) -> None:
        self.last = (mixed, tracks)


def _recorders(n: int, tap: str, root: Path) -> list[Any]:
    if tap == "null":
        return [NullTap() for _ in range(n)]
    from recordings.writer import RecordingWriter

    return [RecordingWriter(root, f"bench-{i:04d}", fsync_interval_s=None) for i in range(n)]


class _Window:
    """CPU and RSS over the measured window, RSS sampled every second for flatness."""

    def __init__(self) -> None:
        self.cpu0 = _cpu_s()
        self.system0 = os.times().system
        self.wall0 = time.monotonic()
        self.rss: list[int] = [_rss_kb()]

    def sample(self) -> None:
        self.rss.append(_rss_kb())

    def result(self, idle_rss: int, calls: int, extra: dict[str, Any]) -> dict[str, Any]:
        wall = time.monotonic() - self.wall0
        rss = _rss_kb()
        return {
            "cpu_pct": 100.0 * (_cpu_s() - self.cpu0) / wall,
            "cpu_system_pct": 100.0 * (os.times().system - self.system0) / wall,
            "rss_kb": rss,
            "rss_per_call_kb": (rss - idle_rss) / max(1, calls),
            "rss_growth_kb": rss - self.rss[0],
            "threads": threading.active_count(),
            **extra,
        }


# ---------------------------------------------------------------------------------------------
# the bridge under test: ours


async def _linkcall_bridge(calls: int, warmup: float, seconds: float, tap: str) -> None:
    from telephony.media import MediaEngine
    from telephony.types import Codec, NegotiatedMedia

    idle_rss = _rss_kb()
    if os.environ.get("MEDIA_LOAD_SWITCH_INTERVAL"):  # GIL hand-over to the loop (s)
        sys.setswitchinterval(float(os.environ["MEDIA_LOAD_SWITCH_INTERVAL"]))
    engine = MediaEngine("127.0.0.1", port_range=(40000, 40000 + 2 * 3 * calls + 400))
    await engine.start()
    eps = [await engine.open_endpoint(f"c{i // 3}-{ROLES[i % 3]}") for i in range(3 * calls)]
    _send([ep.local_port for ep in eps])
    loop = asyncio.get_running_loop()
    peers = await loop.run_in_executor(None, _recv)
    root = Path(tempfile.mkdtemp(prefix="media-load-"))
    recorders = _recorders(calls, tap, root)
    flusher = None
    if tap == "recorder":
        from recordings.flusher import RecordingFlusher

        interval = float(os.environ.get("MEDIA_LOAD_FLUSH_S", "1.0"))
        flusher = RecordingFlusher(lambda w, e: print(e, file=sys.stderr), interval_s=interval)
        for rec in recorders:
            flusher.add(rec)
        flusher.start()
    for c in range(calls):
        conf = engine.create_conference(f"call-{c}")
        for r in range(3):
            ep = eps[3 * c + r]
            media = NegotiatedMedia(
                "127.0.0.1", ep.local_port, "127.0.0.1", peers[3 * c + r], Codec.PCMU, 101
            )
            ep.configure(media)
            conf.add(ep, ROLES[r])
        conf.add_tap(recorders[c])
    _send("ready")
    await loop.run_in_executor(None, _recv)  # go
    await asyncio.sleep(warmup)
    window = _Window()
    stats0 = engine.ticker.stats.ticks, engine.ticker.stats.skipped
    lag0 = list(engine.ticker.lag.counts)
    for _ in range(int(seconds)):
        await asyncio.sleep(1.0)
        window.sample()
    await asyncio.sleep(seconds - int(seconds))
    ts = engine.ticker.stats
    legs = [ep.stats for ep in eps]
    ticks = ts.ticks - stats0[0]
    extra = {
        "cpu_us_per_call_tick": 1e6 * (_cpu_s() - window.cpu0) / max(1, ticks * calls),
        "tick_work_ms_mean": ts.work_ms_mean,
        "tick_work_ms_max": ts.work_ms_max,
        "ticks_skipped": ts.skipped - stats0[1],
        "tick_lag_counts": [b - a for a, b in zip(lag0, engine.ticker.lag.counts, strict=True)],
        "engine_lost": sum(s.packets_lost for s in legs),
        "engine_concealed": sum(s.concealed for s in legs),
        "send_errors": sum(s.send_errors for s in legs),
    }
    _send(window.result(idle_rss, calls, extra))
    await loop.run_in_executor(None, sys.stdin.readline)
    if flusher is not None:
        await flusher.stop()
    await engine.stop()
    shutil.rmtree(root, ignore_errors=True)


async def _linkcall_workers_bridge(calls: int, warmup: float, seconds: float, workers: int) -> None:
    """Ours with LINKCALL_MEDIA_WORKERS=workers: this process is the controller (what the
    service's process does), the engines and recorders run in the worker processes. CPU and
    RSS are the sums over the controller and its workers."""
    from benchmarks.procstat import cpu_seconds, rss_kib
    from calls.media_workers.remote import RemoteMediaEngine
    from telephony.types import Codec, NegotiatedMedia

    span = 2 * 3 * calls + 400 * workers
    engine = RemoteMediaEngine("127.0.0.1", (40000, 40000 + span), workers)
    await engine.start()
    pids = [w.proc.pid for w in engine.workers if w.proc is not None]

    def cpu() -> float:
        return _cpu_s() + sum(cpu_seconds(pid) for pid in pids)

    def rss() -> int:
        return _rss_kb() + sum(rss_kib(pid) for pid in pids)

    idle_rss = rss()
    eps = [await engine.open_endpoint(f"c{i // 3}:{ROLES[i % 3]}") for i in range(3 * calls)]
    _send([ep.local_port for ep in eps])
    loop = asyncio.get_running_loop()
    peers = await loop.run_in_executor(None, _recv)
    root = Path(tempfile.mkdtemp(prefix="media-load-workers-"))
    recordings = []
    for c in range(calls):
        conf = engine.create_conference(f"c{c}:main")
        for r in range(3):
            ep = eps[3 * c + r]
            media = NegotiatedMedia(
                "127.0.0.1", ep.local_port, "127.0.0.1", peers[3 * c + r], Codec.PCMU, 101
            )
            ep.configure(media)
            conf.add(ep, ROLES[r])
        recordings.append(conf.record(root, f"bench-{c:04d}"))
    _send("ready")
    await loop.run_in_executor(None, _recv)  # go
    await asyncio.sleep(warmup)
    cpu0, wall0, rss0 = cpu(), time.monotonic(), rss()
    own0 = _cpu_s()
    skipped0 = engine.ticker.stats.skipped
    lag0 = list(engine.ticker.lag.counts)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - wall0
    used = cpu() - cpu0
    own = _cpu_s() - own0
    now_rss = rss()
    legs = [ep.stats for ep in eps]
    _send(
        {
            "cpu_pct": 100.0 * used / wall,
            "rss_kb": now_rss,
            "rss_per_call_kb": (now_rss - idle_rss) / max(1, calls),
            "rss_growth_kb": now_rss - rss0,
            "threads": 0,
            "cpu_us_per_call_tick": 1e6 * used / max(1, (wall / TICK) * calls),
            "ticks_skipped": engine.ticker.stats.skipped - skipped0,
            "tick_lag_counts": [b - a for a, b in zip(lag0, engine.ticker.lag.counts, strict=True)],
            "engine_lost": sum(s.packets_lost for s in legs),
            "send_errors": sum(s.send_errors for s in legs),
            "workers": workers,
            "controller_cpu_pct": 100.0 * own / wall,
            "controller_rss_kb": _rss_kb(),
        }
    )
    await loop.run_in_executor(None, sys.stdin.readline)
    for rec in recordings:
        await rec.finish()
    await engine.stop()
    shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the baseline: pyVoIP 1.6.8 RTPClients and a mixing thread per call


def _pyvoip_bridge(calls: int, warmup: float, seconds: float, tap: str) -> None:
    from pyVoIP.RTP import PayloadType, RTPClient, TransmitType

    from telephony.media.g711 import audioop

    idle_rss = _rss_kb()
    ports = _free_ports(3 * calls)
    _send(ports)
    peers = _recv()
    root = Path(tempfile.mkdtemp(prefix="media-load-pyvoip-"))
    recorders = _recorders(calls, tap, root)
    running = True
    clients = []
    for i in range(3 * calls):
        c = RTPClient(
            {0: PayloadType.PCMU},
            "127.0.0.1",
            ports[i],
            "127.0.0.1",
            peers[i],
            TransmitType.SENDRECV,
        )
        c.start()
        clients.append(c)

    def bridge(call: int) -> None:
        legs = clients[3 * call : 3 * call + 3]
        rec = recorders[call]
        deadline = time.monotonic()
        while running:
            frames = [audioop.bias(c.read(160, blocking=False), 1, -128) for c in legs]
            for i, c in enumerate(legs):
                a, b = (f for j, f in enumerate(frames) if j != i)
                c.write(audioop.bias(audioop.add(a, b, 1), 1, 128))
            wide = [audioop.lin2lin(f, 1, 2) for f in frames]
            mixed = audioop.add(audioop.add(wide[0], wide[1], 2), wide[2], 2)
            rec.write(mixed, dict(zip(ROLES, wide, strict=True)))
            deadline += TICK
            time.sleep(max(0.0, deadline - time.monotonic()))

    threads = [threading.Thread(target=bridge, args=(c,), daemon=True) for c in range(calls)]
    for t in threads:
        t.start()
    stop_flush = threading.Event()

    def flush_loop() -> None:
        while not stop_flush.wait(1.0):
            for rec in recorders:
                if hasattr(rec, "flush"):
                    rec.flush()

    flusher = threading.Thread(target=flush_loop, daemon=True)
    flusher.start()
    _send("ready")
    _recv()  # go
    time.sleep(warmup)
    window = _Window()
    for _ in range(int(seconds)):
        time.sleep(1.0)
        window.sample()
    time.sleep(seconds - int(seconds))
    _send(window.result(idle_rss, calls, {"cpu_us_per_call_tick": math.nan}))
    sys.stdin.readline()
    running = False
    stop_flush.set()
    for c in clients:
        c.stop()
    shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the phones


def _tone_payloads(freq: float) -> list[bytes]:
    from telephony.media.g711 import audioop

    w = 2 * math.pi * freq / 8000
    pcm = array("h", (round(8000 * math.sin(w * i)) for i in range(8000))).tobytes()
    law = audioop.lin2ulaw(pcm, 2)
    return [law[k * 160 : (k + 1) * 160] for k in range(50)]


class _Stream:
    __slots__ = ("count", "first_seq", "jitter", "last_arrival", "last_seq", "last_transit")

    def __init__(self) -> None:
        self.count = 0
        self.first_seq = -1
        self.last_seq = -1  # extended
        self.last_arrival = 0.0
        self.last_transit: float | None = None
        self.jitter = 0.0


def _phones(calls: int, warmup: float, seconds: float, mode: str) -> None:
    if mode == "batched":
        from benchmarks import rtp_phones

        def recv_targets() -> list[int]:
            targets = _recv()
            _recv()  # "go"
            return targets

        _send(rtp_phones.run(3 * calls, warmup, seconds, TONES, _send, recv_targets))
        return
    n = 3 * calls
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    _send([s.getsockname()[1] for s in socks])
    targets = [("127.0.0.1", p) for p in _recv()]
    payloads = [_tone_payloads(f) for f in TONES]
    ep = select.epoll()
    by_fd = {}
    for i, s in enumerate(socks):
        ep.register(s.fileno(), select.EPOLLIN)
        by_fd[s.fileno()] = i
    streams = [_Stream() for _ in range(n)]
    gaps = array("d")
    header = struct.Struct("!BBHII")
    cmsg_size = socket.CMSG_SPACE(16)
    _recv()  # "go"
    cpu0 = _cpu_s()
    start_mono = time.monotonic()
    start_rt = time.time()
    t_from = start_rt + warmup
    t_to = t_from + seconds
    total = int((warmup + seconds + 0.5) / TICK)
    for k in range(total):
        for i, s in enumerate(socks):
            pkt = header.pack(0x80, 0, (k + i) & 0xFFFF, (k * 160) & 0xFFFFFFFF, 1000 + i)
            s.sendto(pkt + payloads[i % 3][k % 50], targets[i])
        deadline = start_mono + (k + 1) * TICK
        while True:
            timeout = deadline - time.monotonic()
            events = ep.poll(max(0.0, timeout)) if timeout > 0 else ep.poll(0)
            for fd, _ in events:
                _drain(socks[by_fd[fd]], streams[by_fd[fd]], gaps, header, cmsg_size, t_from, t_to)
            if timeout <= 0:
                break
    report = _phone_report(streams, gaps, seconds)
    report["phones_cpu_pct"] = 100.0 * (_cpu_s() - cpu0) / (time.monotonic() - start_mono)
    _send(report)


def _drain(
    sock: socket.socket,
    st: _Stream,
    gaps: array[float],
    header: struct.Struct,
    cmsg_size: int,
    t_from: float,
    t_to: float,
) -> None:
    while True:
        try:
            data, anc, _, _ = sock.recvmsg(2048, cmsg_size)
        except BlockingIOError:
            return
        arrival = time.time()
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", cdata[:16])
                arrival = sec + nsec * 1e-9
        if not t_from <= arrival <= t_to or len(data) < 12:
            continue
        _, pt, seq, ts, _ = header.unpack_from(data)
        if pt & 0x7F != 0:
            continue
        if st.count == 0:
            st.first_seq = st.last_seq = seq
        else:
            ext = st.last_seq + ((seq - st.last_seq) & 0xFFFF)
            if ((seq - st.last_seq) & 0xFFFF) < 0x8000:
                st.last_seq = ext
            gaps.append(arrival - st.last_arrival)
        transit = arrival * 8000 - ts
        if st.last_transit is not None:
            d = abs(transit - st.last_transit)
            if d < 1 << 30:
                st.jitter += (d - st.jitter) / 16
        st.last_transit = transit
        st.last_arrival = arrival
        st.count += 1


def _phone_report(streams: list[_Stream], gaps: array[float], seconds: float) -> dict[str, Any]:
    received = sum(s.count for s in streams)
    by_seq = sum(s.last_seq - s.first_seq + 1 for s in streams if s.count)
    ordered = sorted(gaps)
    p99 = ordered[int(0.99 * (len(ordered) - 1))] if ordered else math.nan
    jitters = [s.jitter / 8.0 for s in streams if s.count]
    return {
        "expected": int(len(streams) * seconds / TICK),
        "received": received,
        "lost": max(0, by_seq - received),
        "silent_streams": sum(1 for s in streams if s.count == 0),
        "gap_mean_ms": 1000 * sum(gaps) / len(gaps) if gaps else math.nan,
        "gap_p99_ms": 1000 * p99,
        "gap_max_ms": 1000 * ordered[-1] if ordered else math.nan,
        "gaps_over_30ms_pct": 100.0 * sum(1 for g in gaps if g > 0.030) / max(1, len(gaps)),
        "jitter_mean_ms": sum(jitters) / len(jitters) if jitters else math.nan,
        "jitter_max_ms": max(jitters) if jitters else math.nan,
    }


# ---------------------------------------------------------------------------------------------
# the driver


def _spawn(*args: str, nice: int = 0) -> subprocess.Popen[str]:
    prefix = ["nice", "-n", str(nice)] if nice else []
    return subprocess.Popen(
        [*prefix, sys.executable, __file__, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _line(proc: subprocess.Popen[str], obj: Any) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(obj) + "\n")
    proc.stdin.flush()


def _read(proc: subprocess.Popen[str], timeout: float) -> Any:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no answer from {proc.args}")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{proc.args} exited with {proc.wait()}")
    return json.loads(line)


def run_one(
    impl: str,
    calls: int,
    warmup: float,
    seconds: float,
    tap: str,
    nice: int = 0,
    phones_mode: str = "batched",
) -> dict[str, Any]:
    """One measurement: a bridge and the phones for `calls` three-way calls."""
    spec = [str(calls), str(warmup), str(seconds)]
    bridge = _spawn("_bridge", impl, *spec, tap, nice=nice)
    phones = _spawn("_phones", *spec, phones_mode, nice=nice)
    try:
        bridge_ports = _read(bridge, 60)
        phone_ports = _read(phones, 60)
        _line(bridge, phone_ports)
        _line(phones, bridge_ports)
        _read(bridge, 120)  # ready
        _line(phones, "go")
        _line(bridge, "go")
        bridge_result = _read(bridge, warmup + seconds + 60)
        phone_result = _read(phones, warmup + seconds + 60)
        _line(bridge, "stop")
        bridge.wait(60)
        phones.wait(60)
    finally:
        for proc in (bridge, phones):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    load = os.getloadavg()[0]  # the machine's 1-minute load average at the end of the window
    return {"impl": impl, "calls": calls, **phone_result, **bridge_result, "load1": load}


COLUMNS = [
    ("impl", "{:>8}"),
    ("calls", "{:>5}"),
    ("expected", "{:>8}"),
    ("received", "{:>8}"),
    ("lost", "{:>6}"),
    ("gap_mean_ms", "{:>8.2f}"),
    ("gap_p99_ms", "{:>8.2f}"),
    ("gap_max_ms", "{:>8.2f}"),
    ("gaps_over_30ms_pct", "{:>7.3f}"),
    ("jitter_mean_ms", "{:>7.2f}"),
    ("jitter_max_ms", "{:>7.2f}"),
    ("cpu_pct", "{:>6.1f}"),
    ("cpu_us_per_call_tick", "{:>7.1f}"),
    ("rss_kb", "{:>8}"),
    ("rss_per_call_kb", "{:>8.1f}"),
    ("rss_growth_kb", "{:>7}"),
    ("phones_cpu_pct", "{:>7.1f}"),
    ("load1", "{:>5.2f}"),
]
HEADERS = [
    "bridge",
    "calls",
    "expected",
    "received",
    "lost",
    "gap ms",
    "p99 ms",
    "max ms",
    ">30ms %",
    "jit ms",
    "jit max",
    "CPU %",
    "us/call",
    "RSS KB",
    "KB/call",
    "grow KB",
    "phones%",
    "load",
]


def _row(values: Mapping[str, Any]) -> str:
    return " ".join(fmt.format(values[key]) for key, fmt in COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="50,150,300", help="comma-separated N for linkcall")
    parser.add_argument("--baseline", default="10,30,60", help="N for pyVoIP ('' to skip)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per N")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--tap", choices=("recorder", "null"), default="recorder")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="linkcall's engine in N worker processes (LINKCALL_MEDIA_WORKERS; 1: in process)",
    )
    parser.add_argument(
        "--phones",
        choices=("batched", "per-stream"),
        default="batched",
        help="the phones: a few sockets with sendmmsg/recvmmsg (benchmarks/rtp_phones.py), "
        "or one socket and one system call per packet per stream (as before 2026-12-06)",
    )
    parser.add_argument(
        "--nice", type=int, default=0, help="run both processes at this niceness (root: < 0)"
    )
    args = parser.parse_args()
    widths = [int(fmt[3:].split(".")[0].rstrip("}d")) for _, fmt in COLUMNS]
    print(" ".join(h.rjust(w) for h, w in zip(HEADERS, widths, strict=True)))
    rows = []
    ours = "linkcall" if args.workers == 1 else f"lc-w{args.workers}"
    os.environ["MEDIA_LOAD_WORKERS"] = str(args.workers)  # read by the bridge process
    plan = [(ours, c) for c in args.calls.split(",") if c]
    plan += [("pyvoip", c) for c in args.baseline.split(",") if c]
    for impl, calls in plan:
        row = run_one(impl, int(calls), args.warmup, args.seconds, args.tap, args.nice, args.phones)
        rows.append(row)
        print(_row(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_bridge":
        impl, calls, warmup, seconds, tap = sys.argv[2:7]
        if impl == "linkcall" and os.environ.get("MEDIA_LOAD_PROFILE"):
            import cProfile

            cProfile.run(
                "asyncio.run(_linkcall_bridge(int(calls), float(warmup), float(seconds), tap))",
                os.environ["MEDIA_LOAD_PROFILE"],
            )
        elif impl == "linkcall":
            asyncio.run(_linkcall_bridge(int(calls), float(warmup), float(seconds), tap))
        elif impl.startswith("lc-w"):
            workers = int(os.environ.get("MEDIA_LOAD_WORKERS", impl[4:]))
            asyncio.run(
                _linkcall_workers_bridge(int(calls), float(warmup), float(seconds), workers)
            )
        else:
            _pyvoip_bridge(int(calls), float(warmup), float(seconds), tap)
    elif len(sys.argv) > 1 and sys.argv[1] == "_phones":
        _phones(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        main()
