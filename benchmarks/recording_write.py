"""Benchmark: cost of recording N concurrent three-way calls with RecordingWriter.

Simulates the media tick (every recording gets one write() per 20 ms tick: a mixed frame and
three party frames) and the owner's flush once per simulated second, as fast as the machine
allows, then prints the cost per write() call, per flush, and the share of one CPU core that
real time would need. A naive baseline (stdlib wave.writeframes on every tick, four files per
call) is measured on a smaller set for comparison.

    .venv/bin/python benchmarks/recording_write.py --calls 300 --seconds 10
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
import wave
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recordings.writer import RecordingWriter

ROLES = ("caller", "dispatcher", "unit")


def frames(count: int) -> list[bytes]:
    """A few distinct 20 ms frames of noise-like speech stand-in."""
    rng = np.random.default_rng(7)
    return [(rng.normal(0, 3000, 160)).astype("<i2").tobytes() for _ in range(count)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_writer(root: Path, calls: int, seconds: int) -> dict[str, float]:
    """Run the writer benchmark; return the figures in microseconds / milliseconds."""
    sim = [0.0]
    writers = [
        RecordingWriter(
            root,
            f"bench-{i}",
            clock=lambda: datetime(2026, 11, 30, tzinfo=UTC),
            monotonic=lambda: sim[0],
        )
        for i in range(calls)
    ]
    pool = frames(16)
    tick_costs: list[float] = []
    flush_costs: list[float] = []
    second_flush: list[float] = []
    for tick in range(seconds * 50):
        mixed = pool[tick % 16]
        parties = {role: pool[(tick + k + 1) % 16] for k, role in enumerate(ROLES)}
        start = time.perf_counter_ns()
        for w in writers:
            w.write(mixed, parties)
        tick_costs.append((time.perf_counter_ns() - start) / 1000 / calls)
        if tick % 50 == 49:
            sim[0] += 1.0
            all_start = time.perf_counter_ns()
            for w in writers:
                t0 = time.perf_counter_ns()
                w.flush()
                flush_costs.append((time.perf_counter_ns() - t0) / 1e6)
            second_flush.append((time.perf_counter_ns() - all_start) / 1e6)
    fin_start = time.perf_counter()
    for w in writers:
        w.finalise()
    finalise_ms = (time.perf_counter() - fin_start) * 1000 / calls
    write_us = statistics.mean(tick_costs)
    flush_ms = statistics.mean(second_flush)
    return {
        "write_us_mean": write_us,
        "write_us_p99": pct(tick_costs, 0.99),
        "flush_ms_mean": statistics.mean(flush_costs),
        "flush_ms_p99": pct(flush_costs, 0.99),
        "flush_all_ms": flush_ms,
        "flush_all_median_ms": statistics.median(second_flush),
        "flush_all_max_ms": max(second_flush),
        "core_share": (write_us * calls * 50 / 1e6) + flush_ms / 1000,
        "finalise_ms": finalise_ms,
    }


def bench_naive(root: Path, calls: int, seconds: int) -> float:
    """Per-tick cost (µs per call) of writing four wave files with writeframes every tick."""
    with contextlib.ExitStack() as stack:
        files = []
        for i in range(calls):
            for role in ("mixed", *ROLES):
                w = stack.enter_context(wave.open(str(root / f"naive-{i}-{role}.wav"), "wb"))
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(8000)
                files.append(w)
        pool = frames(16)
        start = time.perf_counter_ns()
        for tick in range(seconds * 50):
            for w in files:
                w.writeframes(pool[tick % 16])
        cost = (time.perf_counter_ns() - start) / 1000 / (seconds * 50) / calls
    return cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=10, help="simulated call seconds")
    parser.add_argument("--root", type=Path, default=None, help="directory (default: a tmp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        r = bench_writer(Path(tmp) / "rec", args.calls, args.seconds)
        naive_calls = min(args.calls, 50)
        naive = bench_naive(Path(tmp), naive_calls, args.seconds)
    print(f"recording {args.calls} three-way calls (4 tracks each), {args.seconds} s simulated")
    print(f"{'figure':<56}{'value':>12}")
    print("-" * 68)
    rows = [
        ("write() per call, mean (µs)", r["write_us_mean"]),
        ("write() per call, p99 over ticks (µs)", r["write_us_p99"]),
        ("flush() per recording, mean (ms)", r["flush_ms_mean"]),
        ("flush() per recording, p99 (ms)", r["flush_ms_p99"]),
        (f"flush of all {args.calls} recordings per second, mean (ms)", r["flush_all_ms"]),
        ("  median second (no fdatasync round) (ms)", r["flush_all_median_ms"]),
        ("  worst second (fdatasync round, every 5 s) (ms)", r["flush_all_max_ms"]),
        ("busy share of real time (write CPU + flush wall)", r["core_share"]),
        ("finalise() per recording (ms)", r["finalise_ms"]),
        (f"baseline wave.writeframes per tick ({naive_calls} calls, µs)", naive),
    ]
    for name, value in rows:
        print(f"{name:<56}{value:>12.3f}")


if __name__ == "__main__":
    main()
