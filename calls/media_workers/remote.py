"""The service's side of LINKCALL_MEDIA_WORKERS=N: the media engine's surface, served by N
worker processes (`worker.py`), so the flow runner uses it as it uses the in-process engine.

A call lives on one worker: the first endpoint of a flow (labels are `flow_id:leg_id`,
conferences `flow_id:conference`) places the flow on the live worker with the fewest legs, and
the flow's later endpoints and conferences follow it while any of them is open. Each worker has
its own even-aligned share of the RTP port range.

A worker that dies (EOF on its stdout) or does not answer a request within REQUEST_TIMEOUT_S
is lost: its endpoints end (`lost` set, their digit streams close, so the runner ends those legs
with the reason `media_lost`), its prompts end CLOSED, its recordings are sealed by crash
recovery when the runner finalises them, and a new worker is started in its slot with a
bounded back-off. The service goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import sys
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from calls.log_format import WORKER_LOG_ENV, WorkerLog
from calls.media_workers import protocol as p
from recordings import info as layout
from recordings.errors import RecordingError
from recordings.info import RecordingInfo
from recordings.recovery import recover_directory
from telephony.media.digits import DigitStream
from telephony.media.errors import EndpointClosed, MediaError
from telephony.media.playback import PlaybackOutcome
from telephony.media.stats import LegStats
from telephony.media.ticker import LagHistogram
from telephony.types import DtmfDigit, NegotiatedMedia

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 5.0
SILENT_S = 10.0  # a worker reports every second; this long without a word, it is hung
STOP_TIMEOUT_S = 10.0
RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0


class MediaWorkerLost(MediaError):
    """The worker process that held a leg exited or stopped answering."""


def split_ports(port_range: tuple[int, int], n: int) -> list[tuple[int, int]]:
    """The range cut into n even-aligned parts (RTP even, RTCP the next odd port)."""
    lo, hi = port_range
    lo += lo % 2
    pairs = (hi - lo + 1) // 2
    if pairs < n:
        raise ValueError(f"RTP port range {lo}-{hi} too small for {n} media workers")
    share = pairs // n
    return [(lo + 2 * share * i, lo + 2 * share * (i + 1) - 1) for i in range(n)]


class RemotePlayback:
    """A prompt queued in a worker; `await handle` gives its outcome (CLOSED if the worker died)."""

    def __init__(self) -> None:
        self.outcome: PlaybackOutcome | None = None
        self._done = asyncio.get_running_loop().create_future()

    def finish(self, outcome: PlaybackOutcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self._done.set_result(outcome)

    def done(self) -> bool:
        return self.outcome is not None

    async def wait(self) -> PlaybackOutcome:
        return await asyncio.shield(self._done)

    def __await__(self):  # type: ignore[no-untyped-def]
        return self.wait().__await__()


class RemoteEndpoint:
    """One leg's RTP endpoint in a worker."""

    def __init__(self, worker: _Worker, eid: int, label: str, port: int) -> None:
        self.label = label
        self.local_port = port
        self.digits = DigitStream()
        self.lost = False  # the worker died: this leg's media is gone
        self.closed = False
        self.conference: RemoteConference | None = None
        self._worker = worker
        self._eid = eid
        self._stats = LegStats()

    def __repr__(self) -> str:
        return f"<RemoteEndpoint {self.label} worker={self._worker.index} port={self.local_port}>"

    def _cmd(self, op: str, **kw: Any) -> None:
        if self.lost:  # the leg is being ended 'media_lost': nothing left to control
            return
        if self.closed:
            raise EndpointClosed(self.label)
        self._worker.send({"op": op, "e": self._eid, **kw})

    def configure(self, media: NegotiatedMedia) -> None:
        self._cmd("configure", media=p.media_to_wire(media))

    def inject_dtmf(self, digit: DtmfDigit) -> None:
        self._cmd("inject_dtmf", d=p.digit_to_wire(digit))

    async def send_dtmf(self, digit: str, duration_ms: int = 160) -> None:
        if self.closed:
            raise EndpointClosed(self.label)
        await self._worker.request(
            {"op": "send_dtmf", "e": self._eid, "digit": digit, "ms": duration_ms},
            timeout=duration_ms / 1000 + REQUEST_TIMEOUT_S,
        )

    def play(
        self, prompt: str | os.PathLike[str], *, interrupt_on_dtmf: bool = True
    ) -> RemotePlayback:
        handle = RemotePlayback()
        if self.lost:  # nothing will ever play: over at once, as on a closed leg
            handle.finish(PlaybackOutcome.CLOSED)
            return handle
        if self.closed:
            raise EndpointClosed(self.label)
        hid = self._worker.add_playback(handle)
        self._cmd("play", h=hid, path=os.fspath(prompt), interrupt=interrupt_on_dtmf)
        return handle

    def stop_playback(self) -> None:
        self._cmd("stop_playback")

    @property
    def stats(self) -> LegStats:
        """The leg's counters as of the worker's last report (at most ~1 s old)."""
        return self._stats

    async def close(self) -> None:
        if self.closed:
            return
        self._end()
        if not self.lost:
            with contextlib.suppress(MediaWorkerLost):
                await self._worker.request({"op": "close", "e": self._eid})

    def _end(self) -> None:
        self.closed = True
        if self.conference is not None:
            self.conference.forget(self)
        self.digits.close()
        self._worker.forget(self._eid)

    def lose(self) -> None:
        """The worker died under this leg."""
        if self.closed:
            return
        self.lost = True
        log.error("leg %s: media worker %d lost", self.label, self._worker.index)
        self._end()


class RemoteRecording:
    """A conference's recorder, running in the worker."""

    def __init__(self, worker: _Worker, recording_id: str, directory: Path) -> None:
        self.recording_id = recording_id
        self.directory = directory
        self.error: str | None = None
        self._worker = worker

    async def finish(self) -> tuple[RecordingInfo, str | None]:
        """Stop, flush, seal. If the worker died, crash recovery seals what reached the disk."""
        self._worker.recordings.pop(self.recording_id, None)
        try:
            reply = await self._worker.request(
                {"op": "finalise", "rid": self.recording_id}, timeout=60.0
            )
        except MediaWorkerLost as exc:
            await self._worker.wait_exited()
            try:
                info = await asyncio.to_thread(self._recover)
            except (OSError, ValueError, RecordingError) as failed:
                raise MediaWorkerLost(f"{exc}; recording not recoverable: {failed}") from failed
            return info, f"media worker lost: {exc}"
        info = RecordingInfo.from_json(reply["info"], Path(reply["directory"]))
        return info, reply["error"] or self.error

    def _recover(self) -> RecordingInfo:
        """What the dead worker left: sealed already (it finalised on its way out), or repaired
        and sealed as interrupted by crash recovery."""
        if (self.directory / layout.MANIFEST_FILE).exists():
            return layout.read_manifest(self.directory)
        return recover_directory(self.directory)


class RemoteConference:
    """A conference in a worker."""

    def __init__(self, worker: _Worker, cid: int, name: str) -> None:
        self.name = name
        self._worker = worker
        self._cid = cid
        self._roles: dict[str, RemoteEndpoint] = {}

    def __repr__(self) -> str:
        return f"<RemoteConference {self.name} worker={self._worker.index} legs={len(self._roles)}>"

    def __len__(self) -> int:
        return len(self._roles)

    @property
    def roles(self) -> dict[str, RemoteEndpoint]:
        return dict(self._roles)

    def _leg(self, endpoint: Any) -> RemoteEndpoint:
        if isinstance(endpoint, RemoteEndpoint) and endpoint.lost:
            return endpoint  # being ended: control is a no-op
        if not isinstance(endpoint, RemoteEndpoint) or endpoint._worker is not self._worker:
            raise ValueError(f"{endpoint!r} is not in {self!r}'s media worker")
        return endpoint

    def add(self, endpoint: Any, role: str) -> None:
        ep = self._leg(endpoint)
        if ep.conference is not None:
            raise ValueError(f"{ep.label} is already in {ep.conference}")
        if role in self._roles:
            raise ValueError(f"role {role!r} already taken in {self.name}")
        ep._cmd("add", c=self._cid, role=role)
        ep.conference = self
        self._roles[role] = ep

    def remove(self, endpoint: Any) -> None:
        ep = self._leg(endpoint)
        if ep.conference is not self:
            return
        self.forget(ep)
        if not ep.closed:
            ep._cmd("remove", c=self._cid)

    def forget(self, ep: RemoteEndpoint) -> None:
        ep.conference = None
        for role, other in list(self._roles.items()):
            if other is ep:
                del self._roles[role]

    def mute(self, endpoint: Any, muted: bool = True) -> None:
        self._leg(endpoint)._cmd("mute", c=self._cid, on=muted)

    def hold(self, endpoint: Any, held: bool = True) -> None:
        self._leg(endpoint)._cmd("hold", c=self._cid, on=held)

    def add_tap(self, tap: Any) -> None:
        """Frames stay in the worker: a recording is started with `record()` instead."""
        raise MediaError(f"{self.name}: taps run in the media worker; use record()")

    def remove_tap(self, tap: Any) -> None:
        """Nothing to remove (see add_tap)."""

    def record(self, root: Path, recording_id: str) -> RemoteRecording:
        """Start recording this conference in its worker (files, seal and recovery as with an
        in-process RecordingWriter; write errors are logged and reported by `finish`)."""
        started = datetime.now(UTC)
        directory = layout.recording_directory(
            root, layout.check_recording_id(recording_id), started
        )
        recording = RemoteRecording(self._worker, recording_id, directory)
        self._worker.recordings[recording_id] = recording
        self._worker.send(
            {
                "op": "record",
                "c": self._cid,
                "root": str(root),
                "rid": recording_id,
                "started": started.isoformat(),
            }
        )
        return recording


class AggregateTicker:
    """The workers' tick lag and skipped ticks, summed (for the metrics)."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers

    @property
    def lag(self) -> LagHistogram:
        total = LagHistogram()
        for w in self._workers:
            counts, seconds = w.lag
            for i, n in enumerate(counts[: len(total.counts)]):
                total.counts[i] += n
            total.total += seconds
        return total

    @property
    def stats(self) -> Any:
        @dataclass
        class _Skipped:
            skipped: int

        return _Skipped(sum(w.skipped for w in self._workers))


@dataclass
class _Worker:
    """One worker process and its channel."""

    index: int
    port_range: tuple[int, int]
    host: str
    proc: asyncio.subprocess.Process | None = None
    alive: bool = False
    legs: int = 0
    lag: tuple[list[int], float] = ([], 0.0)
    skipped: int = 0
    lost_packets: int = 0
    pending: dict[int, asyncio.Future[p.Message]] = field(default_factory=dict)
    endpoints: dict[int, RemoteEndpoint] = field(default_factory=dict)
    playbacks: dict[int, RemotePlayback] = field(default_factory=dict)
    recordings: dict[str, RemoteRecording] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    on_lost: Any = None
    lock_path: Path | None = None  # held shared while the process lives (`wait_for_previous`)
    silent_s: float = SILENT_S
    log: WorkerLog | None = None  # the service's log level, format and node name
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "calls.media_workers.worker",
            self.host,
            f"{self.port_range[0]}-{self.port_range[1]}",
            *([str(self.lock_path)] if self.lock_path is not None else []),
            env={**os.environ, **({WORKER_LOG_ENV: self.log.encode()} if self.log else {})},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=p.MAX_LINE,
        )
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                ready = p.decode(await self.proc.stdout.readline())
        except (TimeoutError, p.ProtocolError) as exc:
            self.proc.kill()
            await self.proc.wait()
            raise MediaError(f"media worker {self.index} did not start: {exc!r}") from exc
        if ready["op"] != "ready":
            self.proc.kill()
            raise MediaError(f"media worker {self.index} said {ready!r} instead of ready")
        self.alive = True
        self.reader = asyncio.get_running_loop().create_task(
            self._read(), name=f"media-worker-{self.index}"
        )
        log.info(
            "media worker %d started (pid %d, RTP %d-%d)",
            self.index,
            self.proc.pid,
            *self.port_range,
        )

    async def wait_exited(self) -> None:
        """Until the process is gone (killed if need be), so nothing writes its files any more."""
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self.proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, message: p.Message) -> None:
        """A one-way command; dropped once the worker is lost (its legs are being ended, so
        control of them must not fail the caller)."""
        if not self.alive or self.proc is None or self.proc.stdin is None:
            log.debug("media worker %d lost: %s dropped", self.index, message["op"])
            return
        self.proc.stdin.write(p.encode(message))

    async def request(self, message: p.Message, timeout: float = REQUEST_TIMEOUT_S) -> p.Message:
        if not self.alive:
            raise MediaWorkerLost(f"media worker {self.index} is not running")
        rid = self.next_id()
        fut: asyncio.Future[p.Message] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        try:
            self.send({**message, "id": rid})
            async with asyncio.timeout(timeout):
                reply = await asyncio.shield(fut)
        except TimeoutError:
            self.lose(f"no answer to {message['op']} in {timeout:.0f} s")
            raise MediaWorkerLost(f"media worker {self.index} did not answer") from None
        finally:
            self.pending.pop(rid, None)
        if not reply.get("ok"):
            err = reply.get("error", "failed")
            raise ValueError(err) if reply.get("kind") == "value" else MediaError(err)
        return reply

    def add_playback(self, handle: RemotePlayback) -> int:
        hid = self.next_id()
        self.playbacks[hid] = handle
        return hid

    def forget(self, eid: int) -> None:
        if self.endpoints.pop(eid, None) is not None:
            self.legs -= 1

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        reason = "exited"
        try:
            while True:
                async with asyncio.timeout(self.silent_s):
                    line = await self.proc.stdout.readline()
                if not line:
                    break
                self._event(p.decode(line))
        except TimeoutError:
            reason = f"silent for {self.silent_s:.0f} s"
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        except (p.ProtocolError, ValueError) as exc:  # includes a line over the limit
            reason = f"broke the protocol: {exc}"
        code = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                code = await self.proc.wait()
        self.lose(f"{reason} (exit code {code})")

    def _event(self, m: p.Message) -> None:
        match m["op"]:
            case "reply":
                fut = self.pending.get(m["id"])
                if fut is not None and not fut.done():
                    fut.set_result(m)
            case "digit":
                ep = self.endpoints.get(m["e"])
                if ep is not None:
                    ep.digits.put(p.digit_from_wire(m["d"]))
            case "played":
                handle = self.playbacks.pop(m["h"], None)
                if handle is not None:
                    outcome = m["outcome"]
                    handle.finish(
                        PlaybackOutcome.CLOSED if outcome == "failed" else PlaybackOutcome(outcome)
                    )
            case "stats":
                for eid, values in m["legs"].items():
                    ep = self.endpoints.get(int(eid))
                    if ep is not None:
                        ep._stats = p.stats_from_wire(values)
                self.lag = (list(m["lag"][0]), float(m["lag"][1]))
                self.skipped = int(m["skipped"])
                self.lost_packets = int(m["lost"])
            case "recording_error":
                rec = self.recordings.get(m["rid"])
                if rec is not None:
                    rec.error = m["error"]
                log.error("media worker %d: recording %s: %s", self.index, m["rid"], m["error"])

    def lose(self, reason: str) -> None:
        """End everything on this worker; the engine restarts it."""
        if not self.alive:
            return
        self.alive = False
        log.error("media worker %d lost: %s; ending its %d legs", self.index, reason, self.legs)
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(MediaWorkerLost(f"media worker {self.index} {reason}"))
        for ep in list(self.endpoints.values()):
            ep.lose()
        for handle in self.playbacks.values():
            handle.finish(PlaybackOutcome.CLOSED)
        self.playbacks.clear()
        if self.on_lost is not None:
            self.on_lost(self)

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        proc, self.alive = self.proc, False
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # the worker finalises its recordings and exits
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await proc.wait()
        except TimeoutError:
            log.error("media worker %d did not stop in %.0f s: killed", self.index, STOP_TIMEOUT_S)
            proc.kill()
            await proc.wait()


PREVIOUS_WORKERS_WAIT_S = 10.0


async def wait_for_previous(lock_path: Path, timeout: float) -> bool:
    """After a crash of the service, its media workers live on for a moment: they see their
    stdin close, seal the recordings they hold and exit. Each holds `lock_path` shared while it
    lives; wait (bounded) until an exclusive lock is free, so the new process neither recovers
    a recording an old worker still writes nor competes for its RTP ports. True when none was
    left (or they all exited in time)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    with open(lock_path, "a+b") as fh:  # noqa: ASYNC230 - once at start-up, a local file
        waited = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if loop.time() >= deadline:
                    log.error("media workers of the previous process still run after %.0f s",
                              timeout)  # fmt: skip
                    return False
                if not waited:
                    log.warning("waiting for the previous process's media workers to finish")
                    waited = True
                await asyncio.sleep(0.05)
                continue
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return True


class RemoteMediaEngine:
    """N media worker processes behind the MediaEngine surface the flow runner uses."""

    def __init__(
        self,
        host: str,
        port_range: tuple[int, int],
        workers: int,
        *,
        lock_path: Path | None = None,
        silent_s: float = SILENT_S,
        log: WorkerLog | None = None,
    ) -> None:
        if workers < 2:
            raise ValueError("RemoteMediaEngine needs at least 2 workers (1: use MediaEngine)")
        self._host = host
        self.port_range = port_range
        self._silent_s = silent_s
        self._workers = [
            _Worker(i, r, host, silent_s=silent_s)
            for i, r in enumerate(split_ports(port_range, workers))
        ]
        self.lock_path = lock_path
        self._log = log
        for w in self._workers:
            w.on_lost = self._on_lost
            w.lock_path = lock_path
            w.log = log
        self._placement: dict[str, tuple[_Worker, int]] = {}  # flow id -> worker, open objects
        self._restarts: dict[int, asyncio.Task[None]] = {}
        self._running = False
        self.ticker = AggregateTicker(self._workers)

    @property
    def host(self) -> str:
        return self._host

    @host.setter
    def host(self, host: str) -> None:
        self._host = host
        for w in self._workers:
            w.host = host
            if w.alive:
                w.send({"op": "host", "host": host})

    @property
    def workers(self) -> list[_Worker]:
        return list(self._workers)

    async def start(self) -> None:
        self._running = True
        if self.lock_path is not None:
            await wait_for_previous(self.lock_path, PREVIOUS_WORKERS_WAIT_S)
        await asyncio.gather(*(w.start() for w in self._workers))

    async def stop(self) -> None:
        self._running = False
        for task in self._restarts.values():
            task.cancel()
        await asyncio.gather(*self._restarts.values(), return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self._workers))

    def packets_lost_total(self) -> int:
        return sum(w.lost_packets for w in self._workers)

    def _place(self, label: str) -> _Worker:
        """The worker of the label's flow; a new flow goes to the live worker with the fewest
        legs (with none alive: a lost one, whose requests fail and commands are dropped)."""
        key = label.split(":", 1)[0]
        placed = self._placement.get(key)
        if placed is not None and placed[0].alive:
            worker, count = placed
        else:
            live = [w for w in self._workers if w.alive] or self._workers
            worker, count = min(live, key=lambda w: w.legs), 0
        self._placement[key] = (worker, count + 1)
        return worker

    def _release(self, key: str) -> None:
        placed = self._placement.get(key)
        if placed is None:
            return
        worker, count = placed
        if count <= 1:
            del self._placement[key]
        else:
            self._placement[key] = (worker, count - 1)

    async def open_endpoint(self, label: str, *, inband_dtmf: bool | None = None) -> RemoteEndpoint:
        if not self._running:
            raise MediaError("media engine not started")
        worker = self._place(label)
        key = label.split(":", 1)[0]
        eid = worker.next_id()
        try:
            reply = await worker.request(
                {"op": "open", "e": eid, "label": label, "inband": inband_dtmf}
            )
        except BaseException:
            self._release(key)
            raise
        ep = RemoteEndpoint(worker, eid, label, int(reply["port"]))
        worker.endpoints[eid] = ep
        worker.legs += 1
        weakref.finalize(ep, self._release, key)
        return ep

    def create_conference(
        self, name: str = "conference", hold_music: object = None
    ) -> RemoteConference:
        worker = self._place(name)
        cid = worker.next_id()
        worker.send({"op": "conference", "c": cid, "name": name})
        conf = RemoteConference(worker, cid, name)
        weakref.finalize(conf, self._release, name.split(":", 1)[0])
        return conf

    def _on_lost(self, worker: _Worker) -> None:
        for key, (w, _) in list(self._placement.items()):
            if w is worker:
                del self._placement[key]
        if self._running and worker.index not in self._restarts:
            self._restarts[worker.index] = asyncio.get_running_loop().create_task(
                self._restart(worker), name=f"media-worker-{worker.index}-restart"
            )

    async def _restart(self, old: _Worker) -> None:
        delay = RESTART_MIN_S
        try:
            while self._running:
                await asyncio.sleep(delay)
                fresh = _Worker(
                    old.index,
                    old.port_range,
                    self._host,
                    on_lost=self._on_lost,
                    lock_path=self.lock_path,  # a restarted worker holds the lock too
                    silent_s=self._silent_s,
                    log=self._log,
                )
                try:
                    await fresh.start()
                except (MediaError, OSError) as exc:
                    log.error("media worker %d restart failed: %s", old.index, exc)
                    delay = min(delay * 2, RESTART_MAX_S)
                    continue
                self._workers[old.index] = fresh
                return
        finally:
            self._restarts.pop(old.index, None)
