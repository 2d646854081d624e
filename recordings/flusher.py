"""RecordingFlusher: the background task that flushes every active recording once per second.

One asyncio task for all recordings of the process. Each round runs the flushes in a worker
thread (`asyncio.to_thread`), so the event loop, which drives the 20 ms media tick, never waits
on the disk (an fdatasync of hundreds of files can take a few hundred milliseconds). Rounds
follow absolute deadlines; a round that overruns is followed at once by the next one.

Write errors are not swallowed: each one is handed to `on_error(writer, error)` on the event
loop, so the owner (the call flow runner) can log it, mark the call and alert a supervisor.
Nothing ends the task but `stop()`: a round that fails, or an `on_error` that raises, is logged
and the next round comes as usual (a dead flusher would leave every recording of the process
unflushed, its audio dropped after 30 s in memory).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from recordings.errors import RecordingStateError, RecordingWriteError
from recordings.writer import RecordingWriter

log = logging.getLogger(__name__)

ErrorHandler = Callable[[RecordingWriter, RecordingWriteError], None]


class RecordingFlusher:
    """Flushes the writers added to it every `interval_s` seconds until stopped."""

    def __init__(self, on_error: ErrorHandler, *, interval_s: float = 1.0) -> None:
        if not 0 < interval_s <= 1.0:
            raise ValueError("recordings must be flushed at least once per second")
        self._on_error = on_error
        self._interval_s = interval_s
        self._writers: dict[int, RecordingWriter] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, writer: RecordingWriter) -> None:
        """Flush `writer` from the next round on."""
        self._writers[id(writer)] = writer

    def remove(self, writer: RecordingWriter) -> None:
        """Stop flushing `writer` (call before finalising it)."""
        self._writers.pop(id(writer), None)

    def start(self) -> None:
        """Start the background task on the running loop."""
        if self._task is not None:
            raise RuntimeError("flusher already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="recording-flush")

    async def stop(self) -> None:
        """Cancel the background task and wait for it to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise

    async def flush_now(self) -> None:
        """Flush every writer once, in a worker thread, and report the errors."""
        writers = list(self._writers.values())
        failures = await asyncio.to_thread(_flush_all, writers)
        for writer, error in failures:
            try:
                self._on_error(writer, error)
            except Exception:
                log.exception("recording %s: reporting a write error failed", writer.recording_id)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += self._interval_s
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            try:
                await self.flush_now()
            except Exception:
                log.exception("recording flush round failed; the next one follows")
            if loop.time() > deadline + self._interval_s:
                log.warning("recording flush round overran by %.2f s", loop.time() - deadline)
                deadline = loop.time()


def _flush_all(
    writers: list[RecordingWriter],
) -> list[tuple[RecordingWriter, RecordingWriteError]]:
    """Flush each writer (worker thread); collect write errors, skip writers finalised since."""
    failures: list[tuple[RecordingWriter, RecordingWriteError]] = []
    for writer in writers:
        try:
            writer.flush()
        except RecordingWriteError as exc:
            failures.append((writer, exc))
        except RecordingStateError:
            log.debug("recording %s finalised before its flush", writer.recording_id)
    return failures
