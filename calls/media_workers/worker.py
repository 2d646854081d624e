"""A media worker process: one MediaEngine (ticker, poller, prompt cache) and one
RecordingFlusher, driven by the service over stdin/stdout (`protocol.py`).

    python -m calls.media_workers.worker HOST LO-HI

Every leg, conference, prompt, key press and recording of a call placed here lives here; the
service only sends commands and gets events. The worker exits when its stdin closes (the
service stopped or died), after finalising the recordings it still has, so no orphan keeps
ports or leaves a recording unsealed.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from calls.log_format import WORKER_LOG_ENV, WorkerLog
from calls.media_workers import protocol as p
from recordings import RecordingFlusher, RecordingWriter
from recordings.errors import RecordingError, RecordingWriteError
from telephony.media.conference import Conference
from telephony.media.endpoint import RtpEndpoint
from telephony.media.engine import MediaEngine
from telephony.media.errors import MediaError

log = logging.getLogger("calls.media_workers.worker")

STATS_INTERVAL_S = 1.0


def _started_clock(started_at: datetime) -> Callable[[], datetime]:
    """The service's start time for the recording's first reading (its directory name), then
    the wall clock."""
    first = [started_at]

    def clock() -> datetime:
        return first.pop() if first else datetime.now(UTC)

    return clock


class Worker:
    """Applies the service's commands to one engine; reports digits, prompt ends and counters."""

    def __init__(self, engine: MediaEngine, send: Callable[[p.Message], None]) -> None:
        self.engine = engine
        self.send = send
        self.flusher = RecordingFlusher(self._flush_failed)
        self.endpoints: dict[int, RtpEndpoint] = {}
        self.conferences: dict[int, Conference] = {}
        self.recordings: dict[str, tuple[RecordingWriter, Conference]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def _flush_failed(self, writer: RecordingWriter, error: RecordingWriteError) -> None:
        self.send({"op": "recording_error", "rid": writer.recording_id, "error": str(error)})

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, m: p.Message) -> None:
        """One command; a request is answered (also when it fails)."""
        op = m["op"]
        try:
            result = await self._apply(op, m)
        except (MediaError, RecordingError, OSError, ValueError, KeyError) as exc:
            kind = "value" if isinstance(exc, ValueError | KeyError) else "media"
            if op in p.REQUESTS:
                self.send(
                    {"op": "reply", "id": m["id"], "ok": False, "error": str(exc), "kind": kind}
                )
            else:
                log.error("media worker: %s failed: %s", op, exc)
            return
        if op in p.REQUESTS:
            self.send({"op": "reply", "id": m["id"], "ok": True, **(result or {})})

    async def _apply(self, op: str, m: p.Message) -> p.Message | None:
        match op:
            case "open":
                ep = await self.engine.open_endpoint(m["label"], inband_dtmf=m.get("inband"))
                self.endpoints[m["e"]] = ep
                self.spawn(self._forward_digits(m["e"], ep))
                return {"port": ep.local_port}
            case "configure":
                self.endpoints[m["e"]].configure(p.media_from_wire(m["media"]))
            case "close":
                closing = self.endpoints.pop(m["e"], None)
                if closing is not None:
                    await closing.close()
            case "conference":
                self.conferences[m["c"]] = self.engine.create_conference(m["name"])
            case "add":
                self.conferences[m["c"]].add(self.endpoints[m["e"]], m["role"])
            case "remove":
                leaving = self.endpoints.get(m["e"])
                if leaving is not None:
                    self.conferences[m["c"]].remove(leaving)
            case "mute":
                self.conferences[m["c"]].mute(self.endpoints[m["e"]], bool(m["on"]))
            case "hold":
                self.conferences[m["c"]].hold(self.endpoints[m["e"]], bool(m["on"]))
            case "play":
                self._play(m)
            case "stop_playback":
                self.endpoints[m["e"]].stop_playback()
            case "send_dtmf":
                await self.endpoints[m["e"]].send_dtmf(m["digit"], int(m["ms"]))
            case "inject_dtmf":
                self.endpoints[m["e"]].inject_dtmf(p.digit_from_wire(m["d"]))
            case "record":
                self._record(m)
            case "finalise":
                return await self._finalise(m["rid"])
            case "host":
                self.engine.host = m["host"]
        return None

    def _play(self, m: p.Message) -> None:
        try:
            handle = self.endpoints[m["e"]].play(m["path"], interrupt_on_dtmf=bool(m["interrupt"]))
        except (MediaError, OSError, KeyError) as exc:
            log.error("media worker: prompt %s not played: %s", m["path"], exc)
            self.send({"op": "played", "h": m["h"], "outcome": "failed"})
            return

        async def done() -> None:
            outcome = await handle
            self.send({"op": "played", "h": m["h"], "outcome": outcome.value})

        self.spawn(done())

    def _record(self, m: p.Message) -> None:
        conf = self.conferences[m["c"]]
        started = datetime.fromisoformat(m["started"])
        try:
            writer = RecordingWriter(Path(m["root"]), m["rid"], clock=_started_clock(started))
        except RecordingError as exc:
            self.send({"op": "recording_error", "rid": m["rid"], "error": str(exc)})
            return
        conf.add_tap(writer)
        self.flusher.add(writer)
        self.recordings[m["rid"]] = (writer, conf)

    async def _finalise(self, rid: str) -> p.Message:
        entry = self.recordings.pop(rid, None)
        if entry is None:
            raise MediaError(f"recording {rid} did not start in this worker")
        writer, conf = entry
        conf.remove_tap(writer)
        self.flusher.remove(writer)
        info = await asyncio.to_thread(writer.finalise)
        error = str(writer.error) if writer.error is not None else None
        return {"info": info.to_json(), "directory": str(info.directory), "error": error}

    async def _forward_digits(self, e: int, ep: RtpEndpoint) -> None:
        async for d in ep.digits:
            self.send({"op": "digit", "e": e, "d": p.digit_to_wire(d)})

    async def report(self) -> None:
        """Every leg's counters and the ticker's, once a second (the service's media timeout
        and metrics read them)."""
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            ticker = self.engine.ticker
            self.send(
                {
                    "op": "stats",
                    "legs": {str(e): p.stats_to_wire(ep.stats) for e, ep in self.endpoints.items()},
                    "lag": [list(ticker.lag.counts), ticker.lag.total],
                    "skipped": ticker.stats.skipped,
                    "lost": self.engine.packets_lost_total(),
                }
            )

    async def shutdown(self) -> None:
        for rid in list(self.recordings):
            try:
                await self._finalise(rid)
            except RecordingError as exc:
                log.error("media worker: recording %s not finalised: %s", rid, exc)
        await self.flusher.stop()
        await self.engine.stop()


async def serve(host: str, port_range: tuple[int, int]) -> None:
    """Run until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=p.MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot corrupt the channel
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, out)

    def send(message: p.Message) -> None:
        if not transport.is_closing():
            transport.write(p.encode(message))

    engine = MediaEngine(host=host, port_range=port_range)
    await engine.start()
    worker = Worker(engine, send)
    worker.flusher.start()
    reporter = loop.create_task(worker.report())
    send({"op": "ready", "pid": os.getpid()})
    try:
        while line := await reader.readline():
            try:
                message = p.decode(line)
            except p.ProtocolError as exc:
                log.error("media worker: bad command: %s", exc)
                continue
            if message["op"] in p.REQUESTS:  # may wait (close, DTMF, finalise): in order per leg
                worker.spawn(worker.handle(message))
            else:
                await worker.handle(message)
    finally:
        reporter.cancel()
        await worker.shutdown()
        transport.close()


def _hold_lock(path: str) -> None:
    """Hold the service's worker lock shared until this process exits (the kernel releases it):
    a restarted service waits for it before it recovers recordings (remote.wait_for_previous)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # never closed: released at exit


def main(argv: list[str]) -> int:
    host, ports = argv[1], argv[2]
    if len(argv) > 3:
        _hold_lock(argv[3])
    lo, _, hi = ports.partition("-")
    # the service's format, level and node (text and JSON alike, numbers masked as a safety net)
    WorkerLog.decode(os.environ.get(WORKER_LOG_ENV)).install(f"media-worker[{os.getpid()}]")
    gc.collect()
    gc.freeze()  # as the service does (api/cli.py serve): short full collections, no audio gaps
    asyncio.run(serve(host, (int(lo), int(hi))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
