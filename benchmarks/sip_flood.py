"""Benchmark: an INVITE flood from an untrusted address while recorded bridges are up (issue 13).

The lab of bridge_load.py (Kamailio as registrar with a trunk route to one SIPp answerer that
streams a 1 kHz tone; the linkcall service in its own process, registered as 1000), then:

1. ``--bridges`` (20) recorded three-way bridges created through ``POST /api/v1/bridges``;
2. a quiet window: the RTP the service sends captured for ``--seconds`` (dumpcap);
3. the flood window: a separate process sends ``--rate`` (5,000) INVITEs a second from
   127.0.0.2 (never a trusted peer: Kamailio and SIPp are on 127.0.0.1) for ``--seconds``
   (10), each a new Call-ID and branch, and reads every response it gets, while the RTP is
   captured again;
4. the bridges ended through the API, every recording checked finalised.

Figures (one row per window): the service's RTP send gaps as they arrive (p99, max, share over
30 ms, over every stream the service sends), the service's RSS before and after, its CPU, and
from the flooder's side what an untrusted source gets back: responses, 1xx (only a transaction
sends 100 Trying) and repeated responses to one INVITE (only a transaction retransmits), i.e.
"transactions kept for untrusted sources".

    flock /tmp/linkcall-heavy.lock .venv/bin/python benchmarks/sip_flood.py

Needs root (Kamailio), kamailio, sipp, sox, dumpcap and tshark. Loopback only, never 5060.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.bridge_load import ROLES, create, end_and_check, settled, wait_until
from benchmarks.bridge_report import BridgeRun, RunResult
from benchmarks.bridge_sse import EventLog, follow
from benchmarks.loadlab import LoadLab
from benchmarks.procstat import cpu_seconds, rss_kib

FLOOD_SOURCE = "127.0.0.2"


@dataclass
class FloodReport:
    """What the flooding process sent and got back."""

    sent: int = 0
    responses: int = 0
    provisional: int = 0  # 1xx: only a server transaction sends 100 Trying
    repeated: int = 0  # a second response to one INVITE: only a transaction retransmits
    statuses: Counter[int] = field(default_factory=Counter)


@dataclass
class Window:
    name: str
    seconds: float
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    cpu_s: float = 0.0
    streams: int = 0
    packets: int = 0
    gap_p99_ms: float = float("nan")
    gap_max_ms: float = float("nan")
    over_30ms_pct: float = float("nan")
    flood: FloodReport | None = None


# -- the flooder (its own process: its CPU is not the service's, nor the benchmark's) -----------


def _invite(port: int, here: tuple[str, int], n: int) -> bytes:
    sdp = (
        f"v=0\r\no=x {n} 1 IN IP4 {here[0]}\r\ns=-\r\nc=IN IP4 {here[0]}\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    return (
        f"INVITE sip:1000@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {here[0]}:{here[1]};branch=z9hG4bKflood{n};rport\r\n"
        f"From: <sip:666@{here[0]}>;tag=f{n}\r\nTo: <sip:1000@127.0.0.1>\r\n"
        f"Call-ID: flood-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:666@{here[0]}:{here[1]}>\r\n"
        f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
    ).encode()


def flood(port: int, rate: int, seconds: float, out: mp.Queue[FloodReport]) -> None:
    """Send `rate` INVITEs a second for `seconds` (batches every 10 ms); read all responses."""
    report = FloodReport()
    seen: Counter[str] = Counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((FLOOD_SOURCE, 0))
        s.setblocking(False)
        here = s.getsockname()
        start = time.monotonic()
        per_tick = max(1, rate // 100)
        tick = 0
        end = start + seconds
        while time.monotonic() < end + 2.0:  # 2 s more: late responses, retransmissions
            now = time.monotonic()
            if now < end:
                while report.sent < per_tick * (tick + 1):
                    with contextlib.suppress(BlockingIOError):
                        s.sendto(_invite(port, here, report.sent), ("127.0.0.1", port))
                    report.sent += 1
                tick += 1
            _read(s, report, seen)
            next_tick = start + tick * 0.01
            time.sleep(max(0.0, min(next_tick, end + 2.0) - time.monotonic()))
    out.put(report)


def _read(s: socket.socket, report: FloodReport, seen: Counter[str]) -> None:
    while True:
        try:
            data = s.recv(65535)
        except BlockingIOError:
            return
        report.responses += 1
        status = int(data[8:11]) if data.startswith(b"SIP/2.0 ") else 0
        report.statuses[status] += 1
        report.provisional += 100 <= status < 200
        call_id = _header(data, b"Call-ID")
        seen[call_id] += 1
        report.repeated += seen[call_id] > 1


def _header(data: bytes, name: bytes) -> str:
    for line in data.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return ""


# -- RTP send gaps from a capture --------------------------------------------------------------


def capture(path: Path, lo: int, hi: int, seconds: float) -> None:
    subprocess.run(
        ["dumpcap", "-q", "-i", "lo", "-f", f"udp and src portrange {lo}-{hi}",
         "-a", f"duration:{seconds:g}", "-w", str(path)],
        check=True, capture_output=True, timeout=seconds + 30,
    )  # fmt: skip


def send_gaps(path: Path) -> tuple[int, int, list[float]]:
    """(streams, packets, inter-arrival gaps in s) of every service RTP stream in a capture
    (RTP from the service's even ports; RTCP from the odd ones is left out)."""
    res = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch",
         "-e", "udp.srcport", "-e", "udp.dstport"],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    last: dict[tuple[str, str], float] = {}
    gaps: list[float] = []
    packets = 0
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        t, key = float(parts[0]), (parts[1], parts[2])
        if int(parts[1]) % 2:
            continue
        packets += 1
        if key in last:
            gaps.append(t - last[key])
        last[key] = t
    return len(last), packets, gaps


def fill_gaps(w: Window, path: Path) -> None:
    streams, packets, gaps = send_gaps(path)
    w.streams, w.packets = streams, packets
    if gaps:
        ordered = sorted(gaps)
        w.gap_p99_ms = 1000 * ordered[int(0.99 * (len(ordered) - 1))]
        w.gap_max_ms = 1000 * ordered[-1]
        w.over_30ms_pct = 100.0 * sum(1 for g in gaps if g > 0.030) / len(gaps)


# -- the run -----------------------------------------------------------------------------------


async def measure(lab: LoadLab, args: argparse.Namespace) -> list[Window]:
    tokens = lab.start_service()
    pid = lab.service_pid
    sip_port = int(lab.service_env["LINKCALL_SIP_LISTEN"].rsplit(":", 1)[1])
    print(f"service pid {pid}, SIP port {sip_port}, log {lab.service_log}", flush=True)
    log = EventLog()
    headers = {"Authorization": f"Bearer {tokens['dispatcher']}"}
    windows: list[Window] = []
    async with httpx.AsyncClient(base_url=lab.base_url, headers=headers, timeout=30.0) as client:
        sse = asyncio.create_task(follow(client, log))
        try:
            await asyncio.wait_for(log.connected.wait(), 10.0)
            runs = [BridgeRun(i) for i in range(args.bridges)]
            for run in runs:
                await create(client, run)
                await asyncio.sleep(0.1)
            await wait_until(log, lambda: all(settled(log, r) for r in runs), 60.0)
            up = sum(
                1 for r in runs
                if r.bridge_id and all(log.leg_connected(r.bridge_id, x) for x in ROLES)
            )  # fmt: skip
            print(f"{up} of {args.bridges} bridges up (three legs each)", flush=True)
            await asyncio.sleep(2.0)
            for name, rate in (("quiet", 0), ("flood", args.rate)):
                windows.append(await window(lab, pid, sip_port, name, rate, args.seconds))
                print(row(windows[-1]), flush=True)
            result = RunResult(n=args.bridges, rate=0.0, hold_s=0.0, answer_delay_ms=0)
            await end_and_check(client, log, runs, result, 1)
            finalised = sum(1 for r in runs if r.recording == "finalised" and r.recording_ok)
            print(f"recordings finalised and healthy: {finalised} of {len(runs)}", flush=True)
        finally:
            sse.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await sse
    lab.stop_service()
    return windows


async def window(
    lab: LoadLab, pid: int, sip_port: int, name: str, rate: int, seconds: float
) -> Window:
    w = Window(name, seconds, rss_before_kib=rss_kib(pid))
    cpu0 = cpu_seconds(pid)
    pcap = lab.workdir / f"rtp-{name}.pcapng"
    flooder: mp.Process | None = None
    reports: mp.Queue[FloodReport] = mp.Queue()
    if rate:
        flooder = mp.Process(target=flood, args=(sip_port, rate, seconds, reports), daemon=True)
        flooder.start()
    try:
        await asyncio.to_thread(capture, pcap, lab.rtp.lo, lab.rtp.hi, seconds)
        if flooder is not None:
            w.flood = await asyncio.to_thread(reports.get, True, seconds + 30)
    finally:
        if flooder is not None:
            flooder.join(10)
            if flooder.is_alive():
                flooder.terminate()
    await asyncio.sleep(2.0)
    w.cpu_s = cpu_seconds(pid) - cpu0
    w.rss_after_kib = rss_kib(pid)
    await asyncio.to_thread(fill_gaps, w, pcap)
    return w


HEAD = (
    "| window | RTP streams | packets | send gap p99 (ms) | max (ms) | > 30 ms % | service CPU s "
    "| RSS before → after (MiB) | INVITEs sent | responses | 1xx | repeated | statuses |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def row(w: Window) -> str:
    f = w.flood or FloodReport()
    statuses = ", ".join(f"{k}×{v}" for k, v in sorted(f.statuses.items())) or "—"
    return (
        f"| {w.name} {w.seconds:g} s | {w.streams} | {w.packets} | {w.gap_p99_ms:.1f} "
        f"| {w.gap_max_ms:.1f} | {w.over_30ms_pct:.3f} | {w.cpu_s:.1f} "
        f"| {w.rss_before_kib / 1024:.1f} → {w.rss_after_kib / 1024:.1f} "
        f"| {f.sent} | {f.responses} | {f.provisional} | {f.repeated} | {statuses} |"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bridges", type=int, default=20)
    p.add_argument("--rate", type=int, default=5000, help="untrusted INVITEs per second")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each window")
    p.add_argument("--answer-delay-ms", type=int, default=200)
    p.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: temp)")
    p.add_argument(
        "--service-code",
        type=Path,
        default=None,
        help="run the service from this checkout (PYTHONPATH), e.g. a worktree of an older commit",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.service_code is not None:  # inherited by the service and `tokens create` only
        os.environ["PYTHONPATH"] = str(args.service_code.resolve())
    missing = [t for t in ("dumpcap", "tshark") if shutil.which(t) is None]
    if missing:
        print(f"needs {', '.join(missing)}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sip-flood-")))
        else:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        lab = LoadLab(workdir, args.answer_delay_ms)
        stack.callback(lab.close)
        lab.start_peers()
        print(f"machine load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        windows = asyncio.run(measure(lab, args))
        print()
        print(HEAD)
        for w in windows:
            print(row(w))
    return 0


if __name__ == "__main__":
    sys.exit(main())
