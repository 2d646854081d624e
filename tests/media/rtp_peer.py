"""A plain RTP phone for tests: sends a tone paced on absolute 20 ms deadlines over loopback
UDP, and keeps what it receives. Also a lossy UDP relay and audio analysis helpers (numpy)."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import struct
import time
from array import array
from dataclasses import dataclass, field

import numpy as np

from telephony.media import g711
from telephony.media.dtmf import EventSender
from telephony.media.rtp import RtpPacket, pack_header
from telephony.types import Codec, Direction, NegotiatedMedia

DTMF_PT = 101
SO_TIMESTAMPNS = 35  # Linux


def tone_pcm(freq: float, seconds: float = 1.0, level: float = 0.25) -> bytes:
    n = int(8000 * seconds)
    w = 2 * math.pi * freq / 8000
    return array("h", (round(level * 32767 * math.sin(w * i)) for i in range(n))).tobytes()


def level_db(pcm: bytes, freq: float) -> float:
    """Level of the `freq` component of s16le audio in dBFS (a full-scale sine is 0 dB)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    if len(x) == 0:
        return -200.0
    n = np.arange(len(x))
    z = np.dot(x, np.exp(-2j * np.pi * freq * n / 8000.0))
    amp = 2.0 * abs(z) / len(x)
    return 20.0 * math.log10(max(amp, 1e-10))


def max_frame_jump_db(pcm: bytes) -> float:
    """Largest rise of RMS from one 20 ms frame to the next, in dB: a burst shows up here."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((frames**2).mean(axis=1)) + 1.0
    return float(np.max(20 * np.log10(rms[1:] / rms[:-1]))) if len(rms) > 1 else 0.0


@dataclass
class Received:
    arrival: float
    packet: RtpPacket


@dataclass
class PacedPeer:
    """Sends `pcm` (looped) every 20 ms as G.711 and records every packet it receives."""

    name: str
    pcm: bytes = b""
    codec: Codec = Codec.PCMU
    received: list[Received] = field(default_factory=list)
    sent: int = 0
    sock: socket.socket | None = None
    _task: asyncio.Task[None] | None = None
    _remote: tuple[str, int] | None = None
    _dtmf: list[EventSender] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        assert self.sock is not None
        host, port = self.sock.getsockname()[:2]
        return host, port

    def bind(self) -> tuple[str, int]:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)
        return self.address

    def media_for(self, local_port: int, dtmf: bool = True) -> NegotiatedMedia:
        """What our endpoint would have negotiated with this peer."""
        host, port = self.address if self._remote is None else self._remote
        return NegotiatedMedia(
            "127.0.0.1",
            local_port,
            host,
            port,
            self.codec,
            DTMF_PT if dtmf else None,
            Direction.SENDRECV,
        )

    def start(self, remote: tuple[str, int]) -> None:
        if self.sock is None:
            self.bind()
        self._remote = remote
        self._task = asyncio.get_running_loop().create_task(self._send_loop())

    def send_digit(self, digit: str, duration_ms: int = 100) -> None:
        self._dtmf.append(EventSender(digit, 0, duration_ms))

    async def pause(self) -> None:
        """Stop sending; a later start() is a new stream (new SSRC, sequence, timestamp)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def stop(self) -> None:
        await self.pause()
        if self.sock is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _readable(self) -> None:
        """Arrival times are the kernel's (SO_TIMESTAMPNS, wall clock): a busy test loop
        reading late must not look like packets sent in a burst."""
        assert self.sock is not None
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(2048, socket.CMSG_SPACE(16))
            except BlockingIOError:
                return
            arrival = time.time()
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    arrival = sec + nsec * 1e-9
            self.received.append(Received(arrival, RtpPacket.parse(data)))

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.sock is not None and self._remote is not None
        payload_src = g711.encode(self.codec, self.pcm) if self.pcm else b""
        seq, ssrc, ts = random.getrandbits(16), random.getrandbits(32), random.getrandbits(32)
        start = loop.time()
        k = 0
        while True:
            await asyncio.sleep(max(0.0, start + k * 0.02 - loop.time()))
            if self._dtmf:
                sender = self._dtmf[0]
                if not sender.started:
                    sender.timestamp = ts
                marker, payload = sender.next_packet()
                pkt = pack_header(DTMF_PT, seq, sender.timestamp, ssrc, marker) + payload
                if sender.done:
                    self._dtmf.pop(0)
            else:
                off = (k * 160) % max(1, len(payload_src))
                chunk = (
                    (payload_src[off : off + 160] + payload_src)[:160]
                    if payload_src
                    else (g711.silence_payload(self.codec))
                )
                pkt = pack_header(self.codec.payload_type, seq, ts, ssrc, False) + chunk
            self.sock.sendto(pkt, self._remote)
            self.sent += 1
            seq += 1
            ts += 160
            k += 1

    def audio(self, skip_s: float = 0.0) -> bytes:
        """Decoded received audio in arrival order (the engine never reorders on loopback)."""
        frames = [
            g711.decode(Codec(r.packet.payload_type), r.packet.payload)
            for r in self.received
            if r.packet.payload_type in (0, 8)
        ]
        skip = int(skip_s / 0.02)
        return b"".join(frames[skip:])


class LossyRelay:
    """A UDP relay between a peer and an endpoint that drops a share of peer->endpoint packets."""

    def __init__(self, loss: float, seed: int = 7) -> None:
        self.loss = loss
        self.rng = random.Random(seed)
        self.dropped = 0
        self.forwarded = 0
        self.peer_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the peer sends here
        self.engine_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # engine sees this
        for s in (self.peer_side, self.engine_side):
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
        self.peer_addr: tuple[str, int] | None = None
        self.engine_addr: tuple[str, int] | None = None

    def start(self, engine_addr: tuple[str, int]) -> None:
        self.engine_addr = engine_addr
        loop = asyncio.get_running_loop()
        loop.add_reader(self.peer_side.fileno(), self._from_peer)
        loop.add_reader(self.engine_side.fileno(), self._from_engine)

    def _from_peer(self) -> None:
        while True:
            try:
                data, addr = self.peer_side.recvfrom(2048)
            except BlockingIOError:
                return
            self.peer_addr = addr
            if self.rng.random() < self.loss:
                self.dropped += 1
                continue
            assert self.engine_addr is not None
            self.engine_side.sendto(data, self.engine_addr)
            self.forwarded += 1

    def _from_engine(self) -> None:
        while True:
            try:
                data, _ = self.engine_side.recvfrom(2048)
            except BlockingIOError:
                return
            if self.peer_addr is not None:
                self.peer_side.sendto(data, self.peer_addr)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for s in (self.peer_side, self.engine_side):
            loop.remove_reader(s.fileno())
            s.close()
