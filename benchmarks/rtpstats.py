"""RTP the service sends, captured on loopback and analysed with tshark.

``RtpCapture.capture(seconds)`` runs dumpcap on ``lo`` with a BPF filter on the service's RTP
source ports (so only the mixes the service sends to the peers are kept); ``analyse()`` runs
``tshark -z rtp,streams`` (the service's ports decoded as RTP) afterwards, off the measured
window, and summarises the per-stream packet counts, loss, inter-arrival deltas and RFC 3550
jitter.
"""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RtpStream:
    """One row of ``tshark -z rtp,streams``."""

    src_port: int
    dst_port: int
    packets: int
    lost: int
    seconds: float
    max_delta_ms: float
    mean_delta_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float


@dataclass(frozen=True)
class RtpSummary:
    """Figures over every captured stream."""

    streams: int
    capture_s: float
    packets: int
    pps_per_stream: float  # median; 50 for 20 ms packets
    lost_pct: float
    mean_delta_ms: float
    p95_max_delta_ms: float  # 95th percentile of each stream's largest gap
    max_delta_ms: float
    mean_jitter_ms: float
    max_jitter_ms: float

    def line(self) -> str:
        return (
            f"{self.streams} streams over {self.capture_s:g} s, {self.packets} packets, "
            f"{self.pps_per_stream:.1f} pkt/s per stream, lost {self.lost_pct:.2f} %, "
            f"delta mean {self.mean_delta_ms:.2f} ms / p95-of-max {self.p95_max_delta_ms:.1f} ms "
            f"/ max {self.max_delta_ms:.1f} ms, jitter mean {self.mean_jitter_ms:.2f} ms "
            f"/ max {self.max_jitter_ms:.2f} ms"
        )


def parse_streams(text: str) -> list[RtpStream]:
    """Rows of tshark's ``rtp,streams`` table (fields read from both ends of each row)."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[-1] == "X":  # tshark's "problems" flag
            parts = parts[:-1]
        if len(parts) < 17:
            continue
        try:
            start, end = float(parts[0]), float(parts[1])
            rows.append(
                RtpStream(
                    src_port=int(parts[3]),
                    dst_port=int(parts[5]),
                    packets=int(parts[-9]),
                    lost=int(parts[-8]),
                    seconds=end - start,
                    mean_delta_ms=float(parts[-5]),
                    max_delta_ms=float(parts[-4]),
                    mean_jitter_ms=float(parts[-2]),
                    max_jitter_ms=float(parts[-1]),
                )
            )
        except ValueError:
            continue
    return rows


def summarise(rows: list[RtpStream], capture_s: float) -> RtpSummary | None:
    if not rows:
        return None
    maxes = sorted(r.max_delta_ms for r in rows)
    sent = sum(r.packets for r in rows)
    lost = sum(max(r.lost, 0) for r in rows)
    return RtpSummary(
        streams=len(rows),
        capture_s=capture_s,
        packets=sent,
        pps_per_stream=statistics.median(r.packets / r.seconds for r in rows if r.seconds > 0)
        if any(r.seconds > 0 for r in rows)
        else 0.0,
        lost_pct=100.0 * lost / max(sent + lost, 1),
        mean_delta_ms=statistics.fmean(r.mean_delta_ms for r in rows),
        p95_max_delta_ms=maxes[min(len(maxes) - 1, int(0.95 * len(maxes)))],
        max_delta_ms=maxes[-1],
        mean_jitter_ms=statistics.fmean(r.mean_jitter_ms for r in rows),
        max_jitter_ms=max(r.max_jitter_ms for r in rows),
    )


class RtpCapture:
    """dumpcap on lo for UDP from ports ``lo..hi``; tshark afterwards."""

    def __init__(self, path: Path, lo: int, hi: int) -> None:
        self.path = path
        self.lo = lo
        self.hi = hi
        self.seconds = 0.0

    def capture(self, seconds: float) -> None:
        self.seconds = seconds
        subprocess.run(
            [
                "dumpcap",
                "-q",
                "-i",
                "lo",
                "-f",
                f"udp and src portrange {self.lo}-{self.hi}",
                "-a",
                f"duration:{seconds:g}",
                "-w",
                str(self.path),
            ],
            check=True,
            capture_output=True,
            timeout=seconds + 30,
        )

    def analyse(self) -> RtpSummary | None:
        res = subprocess.run(
            [
                "tshark",
                "-r",
                str(self.path),
                # decode the service's ports as RTP (a port another dissector claims would
                # otherwise hide a stream from the heuristics), heuristics for the rest
                "-d",
                f"udp.port=={self.lo}-{self.hi},rtp",
                "-o",
                "rtp.heuristic_rtp:TRUE",
                "-q",
                "-z",
                "rtp,streams",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return summarise(parse_streams(res.stdout), self.seconds)
