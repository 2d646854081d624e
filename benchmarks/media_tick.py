"""The media engine's own work per call per tick, in one process, without phones or the network.

    .venv/bin/python benchmarks/media_tick.py --calls 150 --ticks 300 [--tap recorder|none]

N three-way conferences on a real MediaEngine, recorded by the real RecordingWriter (flushed
every 50 ticks in the same thread; the first flush, which creates the files, is not counted).
Each tick: every leg's next RTP packet (a tone, PCMU) is handed to the receive path
(`_on_datagram`, as the poller would after `recvfrom`), then the ticker runs once. `sendto` is
replaced by a C no-op, so what is measured is the user-space work of the engine and the
recorder: no kernel, no peer process. It prints CPU µs per call per tick for receiving, the
tick and flushing.

On a shared machine CPU times vary by 30 % from run to run; instruction counts do not. For
before/after comparisons, count instructions with valgrind (the difference of two lengths
cancels start-up):

    for t in 100 400; do valgrind --tool=cachegrind --cache-sim=no \\
        --cachegrind-out-file=/dev/null .venv/bin/python benchmarks/media_tick.py --ticks $t \\
        2>&1 | grep 'I *refs'; done
    # (I refs at 400 - I refs at 100) / 300 / calls = instructions per call per tick

Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import operator
import shutil
import struct
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telephony.media import MediaEngine  # noqa: E402
from telephony.media.g711 import audioop  # noqa: E402
from telephony.types import Codec, NegotiatedMedia  # noqa: E402

ROLES = ("caller", "seat", "unit")
TONES = (500.0, 1100.0, 1900.0)
HEADER = struct.Struct("!BBHII")


class _NoSend:
    """Stands in for a leg's socket when sending: `sendto` is a C function that does nothing."""

    sendto = operator.is_


def _tone_payloads(freq: float) -> list[bytes]:
    w = 2 * math.pi * freq / 8000
    pcm = array("h", (round(8000 * math.sin(w * i)) for i in range(8000))).tobytes()
    law = audioop.lin2ulaw(pcm, 2)
    return [law[k * 160 : (k + 1) * 160] for k in range(50)]


async def run(calls: int, ticks: int, tap: str) -> dict[str, float]:
    engine = MediaEngine("127.0.0.1", port_range=(45000, 45000 + 6 * calls + 400))
    await engine.start()
    await engine.ticker.stop()  # driven by hand below
    eps = [await engine.open_endpoint(f"c{i // 3}-{ROLES[i % 3]}") for i in range(3 * calls)]
    root = Path(tempfile.mkdtemp(prefix="media-tick-"))
    recorders: list[Any] = []
    if tap == "recorder":
        from recordings.writer import RecordingWriter

        recorders = [RecordingWriter(root, f"t-{c}", fsync_interval_s=None) for c in range(calls)]
    for c in range(calls):
        conf = engine.create_conference(f"call-{c}")
        for r in range(3):
            ep = eps[3 * c + r]
            peer_port = 9000 + 3 * c + r
            ep.configure(
                NegotiatedMedia("127.0.0.1", ep.local_port, "127.0.0.1", peer_port, Codec.PCMU, 101)
            )
            conf.add(ep, ROLES[r])
        if recorders:
            conf.add_tap(recorders[c])
    sockets = [ep._sock for ep in eps]
    for ep in eps:
        ep._sock = _NoSend()  # type: ignore[assignment]
    payloads = [_tone_payloads(f) for f in TONES]
    sources = [("127.0.0.1", 9000 + i) for i in range(3 * calls)]
    loop = asyncio.get_running_loop()
    warm = min(20, ticks // 2)
    rx = tick = flush = 0.0
    for k in range(ticks):
        packets = [
            HEADER.pack(0x80, 0, k & 0xFFFF, k * 160, 1000 + i) + payloads[i % 3][k % 50]
            for i in range(3 * calls)
        ]
        now = loop.time()
        t0 = time.thread_time()
        for ep, data, src in zip(eps, packets, sources, strict=True):
            ep._on_datagram(data, src, now)
        t1 = time.thread_time()
        engine.ticker._tick_all(now)
        t2 = time.thread_time()
        if recorders and k % 50 == 49:
            for rec in recorders:
                rec.flush()
        t3 = time.thread_time()
        if k >= warm:
            rx, tick = rx + t1 - t0, tick + t2 - t1
        if k >= 50:
            flush += t3 - t2
    for ep, sock in zip(eps, sockets, strict=True):
        ep._sock = sock
    await engine.stop()
    shutil.rmtree(root, ignore_errors=True)
    n = max(1, (ticks - warm) * calls) / 1e6
    nf = max(1, (ticks - 50) * calls) / 1e6
    return {"receive": rx / n, "tick": tick / n, "flush": flush / nf}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--tap", choices=("recorder", "none"), default="recorder")
    args = parser.parse_args()
    r = asyncio.run(run(args.calls, args.ticks, args.tap))
    print(
        f"{args.calls} calls, {args.tap}: CPU µs per call per tick: receive {r['receive']:.1f}, "
        f"tick {r['tick']:.1f}, flush {r['flush']:.1f}, total {sum(r.values()):.1f}"
    )


if __name__ == "__main__":
    main()
