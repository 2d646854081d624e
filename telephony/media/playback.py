"""Prompts and their playback: WAV files converted once to 8 kHz s16le mono and cached, a
tone/silence generator, and a per-leg queue played one 20 ms frame per tick.

A prompt is loaded once per file version (path, size, mtime); loading reads the file, so
callers on the event loop preload with `await PromptCache.preload(path)` (a worker thread).
"""

from __future__ import annotations

import asyncio
import enum
import math
import os
import wave
from array import array
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from telephony.media.errors import PromptError
from telephony.media.g711 import FRAME_BYTES, SAMPLE_RATE, SAMPLE_WIDTH, audioop


@dataclass(frozen=True, slots=True)
class Prompt:
    """Audio ready to play: s16le, 8 kHz, mono, padded with silence to whole 20 ms frames."""

    name: str
    pcm: bytes

    def __post_init__(self) -> None:
        if len(self.pcm) % FRAME_BYTES:
            object.__setattr__(self, "pcm", self.pcm + bytes(-len(self.pcm) % FRAME_BYTES))

    @property
    def duration_ms(self) -> int:
        return len(self.pcm) * 1000 // (SAMPLE_RATE * SAMPLE_WIDTH)

    @classmethod
    def tone(cls, freq: float, ms: int, level: float = 0.25) -> Prompt:
        """A sine tone at `level` of full scale (0.25 is about -12 dBFS)."""
        if not 0 < freq < SAMPLE_RATE / 2:
            raise ValueError(f"tone frequency {freq} Hz outside 0-{SAMPLE_RATE // 2}")
        n = ms * SAMPLE_RATE // 1000
        amp = max(0.0, min(1.0, level)) * 32767
        w = 2 * math.pi * freq / SAMPLE_RATE
        pcm = array("h", (round(amp * math.sin(w * i)) for i in range(n))).tobytes()
        return cls(f"tone:{freq:g}Hz:{ms}ms", pcm)

    @classmethod
    def silence(cls, ms: int) -> Prompt:
        return cls(f"silence:{ms}ms", bytes(ms * SAMPLE_RATE // 1000 * SAMPLE_WIDTH))

    @classmethod
    def from_wav(cls, path: str | os.PathLike[str]) -> Prompt:
        """Read a PCM WAV of any common rate, 8-32 bit, mono or stereo; convert to 8 kHz s16le."""
        name = os.fspath(path)
        try:
            with wave.open(name, "rb") as w:
                channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
                data = w.readframes(w.getnframes())
        except (OSError, EOFError, wave.Error) as exc:
            raise PromptError(name, f"cannot read WAV: {exc}") from exc
        if channels not in (1, 2) or width not in (1, 2, 3, 4) or rate < 4000:
            raise PromptError(
                name, f"unsupported format: {channels} ch, {width * 8} bit, {rate} Hz"
            )
        if width == 1:
            data = audioop.bias(data, 1, -128)  # WAV 8-bit PCM is unsigned
        if width != SAMPLE_WIDTH:
            data = audioop.lin2lin(data, width, SAMPLE_WIDTH)
        if channels == 2:
            data = audioop.tomono(data, SAMPLE_WIDTH, 0.5, 0.5)
        if rate != SAMPLE_RATE:
            data, _ = audioop.ratecv(data, SAMPLE_WIDTH, 1, rate, SAMPLE_RATE, None)
        return cls(Path(name).name, data)


class PromptCache:
    """Converted prompts by file version, so every call playing a prompt shares one copy."""

    def __init__(self) -> None:
        self._prompts: dict[tuple[str, int, int], Prompt] = {}

    def __len__(self) -> int:
        return len(self._prompts)

    def load(self, path: str | os.PathLike[str]) -> Prompt:
        """The prompt for `path`, converting it on first use (blocking file read)."""
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError as exc:
            raise PromptError(os.fspath(path), f"cannot stat: {exc}") from exc
        key = (real, st.st_size, st.st_mtime_ns)
        prompt = self._prompts.get(key)
        if prompt is None:
            prompt = self._prompts[key] = Prompt.from_wav(real)
        return prompt

    async def preload(self, path: str | os.PathLike[str]) -> Prompt:
        """`load` in a worker thread, for use on the event loop."""
        return await asyncio.to_thread(self.load, path)


class PlaybackOutcome(enum.Enum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"  # a key press
    STOPPED = "stopped"  # stop_playback()
    CLOSED = "closed"  # the leg went away


class PlaybackHandle:
    """One queued prompt; `await handle` gives its outcome."""

    def __init__(self, prompt: Prompt, interrupt_on_dtmf: bool) -> None:
        self.prompt = prompt
        self.interrupt_on_dtmf = interrupt_on_dtmf
        self.outcome: PlaybackOutcome | None = None
        self._waiters: list[asyncio.Future[PlaybackOutcome]] = []

    def done(self) -> bool:
        return self.outcome is not None

    def _finish(self, outcome: PlaybackOutcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(outcome)
        self._waiters.clear()

    async def wait(self) -> PlaybackOutcome:
        if self.outcome is not None:
            return self.outcome
        fut: asyncio.Future[PlaybackOutcome] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return await fut

    def __await__(self):  # type: ignore[no-untyped-def]
        return self.wait().__await__()


class Player:
    """The prompt queue of one leg; `next_frame` is called once per tick."""

    def __init__(self) -> None:
        self._queue: deque[PlaybackHandle] = deque()
        self._pos = 0
        self.active = False  # something is queued (a plain attribute: read every tick)

    def enqueue(self, handle: PlaybackHandle) -> PlaybackHandle:
        self._queue.append(handle)
        self.active = True
        return handle

    def next_frame(self) -> bytes | None:
        """The next 20 ms of the current prompt, or None when nothing is queued."""
        while self._queue:
            pcm = self._queue[0].prompt.pcm
            if self._pos < len(pcm):
                frame = pcm[self._pos : self._pos + FRAME_BYTES]
                self._pos += FRAME_BYTES
                return frame
            self._queue.popleft()._finish(PlaybackOutcome.COMPLETED)
            self._pos = 0
        self.active = False
        return None

    def on_digit(self) -> None:
        """A key press ends the current and queued prompts that are interruptible."""
        if self._queue and self._queue[0].interrupt_on_dtmf:
            self._pos = 0
        kept: deque[PlaybackHandle] = deque()
        for handle in self._queue:
            if handle.interrupt_on_dtmf:
                handle._finish(PlaybackOutcome.INTERRUPTED)
            else:
                kept.append(handle)
        self._queue = kept
        self.active = bool(kept)

    def stop(self, outcome: PlaybackOutcome = PlaybackOutcome.STOPPED) -> None:
        """End everything queued."""
        for handle in self._queue:
            handle._finish(outcome)
        self._queue.clear()
        self._pos = 0
        self.active = False
