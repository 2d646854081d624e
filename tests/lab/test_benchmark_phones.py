"""The batched benchmark phones (benchmarks/rtp_phones.py) report what per-packet phones would.

media_load.py's figures (loss, send gaps, jitter) are computed after the window from columns of
every packet received; this checks them against the plain RFC 3550 loop the per-stream phones
run per packet, on traffic with a sequence wrap, a lost packet, a reordered pair, a long gap,
packets outside the window, an RTP event and a stranger's datagram.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from benchmarks.rtp_phones import _report

T_FROM, T_TO = 10.0, 14.0


def _reference(packets: list[tuple[int, int, int, int, float]], streams: int) -> dict[str, float]:
    """packets: (stream, pt, seq, ts, arrival) in arrival order; the per-stream phones' loop."""
    state: dict[int, dict[str, float]] = {}
    gaps: list[float] = []
    for stream, pt, seq, ts, arrival in packets:
        if stream < 0 or pt != 0 or not T_FROM <= arrival <= T_TO:
            continue
        st = state.get(stream)
        if st is None:
            st = state[stream] = {"first": seq, "last": seq, "count": 0, "jitter": 0.0}
        else:
            delta = (seq - int(st["last"])) & 0xFFFF
            if delta < 0x8000:
                st["last"] += delta
            gaps.append(arrival - st["arrival"])
        transit = arrival * 8000 - ts
        if "transit" in st:
            st["jitter"] += (abs(transit - st["transit"]) - st["jitter"]) / 16
        st["transit"] = transit
        st["arrival"] = arrival
        st["count"] += 1
    received = sum(int(s["count"]) for s in state.values())
    ordered = sorted(gaps)
    jitters = [s["jitter"] / 8.0 for s in state.values()]
    return {
        "received": received,
        "lost": sum(int(s["last"] - s["first"] + 1) for s in state.values()) - received,
        "silent_streams": streams - len(state),
        "gap_mean_ms": 1000 * sum(gaps) / len(gaps),
        "gap_p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "gap_max_ms": 1000 * ordered[-1],
        "gaps_over_30ms_pct": 100.0 * sum(1 for g in gaps if g > 0.030) / len(gaps),
        "jitter_mean_ms": sum(jitters) / len(jitters),
        "jitter_max_ms": max(jitters),
    }


def _traffic() -> list[tuple[int, int, int, int, float]]:
    rng = random.Random(7)
    out: list[tuple[int, int, int, int, float]] = []
    for stream in range(3):
        seq0 = 65500 + 10 * stream  # every stream wraps its sequence number in the window
        for k in range(300):
            arrival = 9.0 + 0.02 * k + rng.uniform(0.0, 0.004)
            if stream == 2 and k >= 150:
                arrival += 0.025  # one 45 ms gap, then on time again
            out.append((stream, 0, (seq0 + k) & 0xFFFF, (1234 + 160 * k) & 0xFFFFFFFF, arrival))
    out = [p for p in out if not (p[0] == 0 and p[2] == (65500 + 100) & 0xFFFF)]  # one lost
    i = next(i for i, p in enumerate(out) if p[0] == 1 and p[2] == (65510 + 120) & 0xFFFF)
    a, b = out[i], out[i + 1]  # stream 1: a reordered pair (the later packet arrives first)
    out[i], out[i + 1] = (*b[:4], a[4]), (*a[:4], b[4])
    out.append((1, 101, 7, 0, 11.0))  # an RFC 4733 event: not audio
    out.append((-1, 0, 7, 0, 11.0))  # from a port that is no stream's
    return out


def _columns(packets: list[tuple[int, int, int, int, float]]) -> tuple[np.ndarray, ...]:
    ports = np.array([40000 + s if s >= 0 else 39999 for s, *_ in packets], dtype=np.int32)
    return (
        ports,
        np.full(len(packets), 172, dtype=np.uint32),
        np.full(len(packets), 0x80, dtype=np.uint8),
        np.array([pt for _, pt, *_ in packets], dtype=np.uint8),
        np.array([p[2] for p in packets], dtype=np.int64),
        np.array([p[3] for p in packets], dtype=np.int64),
        np.array([p[4] for p in packets], dtype=np.float64),
    )


def test_batched_phones_report_the_figures_per_packet_phones_would() -> None:
    packets = _traffic()
    stream_of_port = np.full(65536, -1, dtype=np.int32)
    stream_of_port[40000:40004] = [0, 1, 2, 3]  # stream 3 never hears anything
    cols = _columns(packets)
    half = len(packets) // 2  # as if read by two recvmmsg calls
    chunks = [tuple(c[:half] for c in cols), tuple(c[half:] for c in cols)]
    got = _report(chunks, stream_of_port, 4, T_TO - T_FROM, T_FROM, T_TO)
    want = _reference(packets, 4)
    assert got["received"] == want["received"] > 0
    assert got["lost"] == want["lost"] == 1
    assert got["silent_streams"] == want["silent_streams"] == 1
    assert got["expected"] == 4 * 200
    for key in ("gap_mean_ms", "gap_p99_ms", "gap_max_ms", "gaps_over_30ms_pct"):
        assert got[key] == pytest.approx(want[key]), key
    assert 44.0 < got["gap_max_ms"] < 50.0
    assert got["gaps_over_30ms_pct"] > 0
    for key in ("jitter_mean_ms", "jitter_max_ms"):
        assert got[key] == pytest.approx(want[key], rel=1e-6), key


def test_no_packet_at_all_is_reported_as_silence_not_a_crash() -> None:
    got = _report([], np.full(65536, -1, dtype=np.int32), 6, 4.0, T_FROM, T_TO)
    assert got["received"] == 0 and got["lost"] == 0
    assert got["silent_streams"] == 6
    assert math.isnan(got["gap_p99_ms"])
