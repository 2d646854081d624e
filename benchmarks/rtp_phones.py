"""Batched RTP phones for media_load.py: thousands of paced streams for a few per cent of a core.

The per-stream phones (one socket each, one `sendto` and one `recvmsg` per packet from Python)
used 50-65 % of a core at 300-400 three-way calls, on the same 2-core machine as the bridge under
test: the measurement was limited by its own load generator. These phones do the same thing
with the per-packet work moved out of the interpreter:

- Streams share a few UDP sockets (`GROUP` streams each). Each stream still has its own RTP
  session: its SSRC, sequence numbers, timestamps and tone, and it is signalled to its bridge
  leg as the address of its socket. Every bridge leg thus still receives from exactly the
  address it was given (symmetric RTP holds) and sends to it; the phones tell the streams
  apart by the bridge port a packet came from.
- Sending: all packets of a tick are laid out in one numpy array (headers and payloads written
  column-wise), then one `sendmmsg(2)` per socket sends them.
- Receiving: once per tick, after sending, `recvmmsg(2)` takes up to `VLEN` datagrams per call
  with their source address and kernel receive timestamp (SO_TIMESTAMPNS: the arrival times
  are the kernel's, so reading them up to a tick late does not blur the figures); the columns
  (stream, sequence number, RTP timestamp, arrival) are copied out with numpy, and all
  statistics are computed after the window, not while it runs.

The system calls are made through ctypes (Linux only; the standard library has no
sendmmsg/recvmmsg). The report has the same figures and meaning as the per-stream phones'.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import socket
import time
from typing import Any

import numpy as np

SO_TIMESTAMPNS = 35  # Linux; SCM_TIMESTAMPNS has the same value
MSG_DONTWAIT = 0x40
GROUP = 96  # streams per socket
VLEN = 512  # datagrams per recvmmsg
SLOT = 256  # bytes kept of each received datagram (an RTP header is all that is read)
CTRL = socket.CMSG_SPACE(16)  # one struct timespec
SOCKET_BUFFER = 4 << 20  # capped by net.core.rmem_max / wmem_max
TICK = 0.02


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


_libc = ctypes.CDLL(None, use_errno=True)
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int
_recvmmsg = _libc.recvmmsg
_recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
_recvmmsg.restype = ctypes.c_int

# numpy views of the C structures (byte offsets taken from ctypes, so the layout is the ABI's)
_HDR = _MMsgHdr.msg_hdr.offset
_MMSG_VIEW = np.dtype(
    {
        "names": ["namelen", "controllen", "msg_len"],
        "formats": ["<u4", "<u8", "<u4"],
        "offsets": [
            _HDR + _MsgHdr.msg_namelen.offset,
            _HDR + _MsgHdr.msg_controllen.offset,
            _MMsgHdr.msg_len.offset,
        ],
        "itemsize": ctypes.sizeof(_MMsgHdr),
    }
)
_SOCKADDR = np.dtype([("family", "<u2"), ("port", ">u2"), ("addr", ">u4"), ("zero", "V8")])
_CMSG = np.dtype(
    [("len", "<u8"), ("level", "<i4"), ("type", "<i4"), ("sec", "<i8"), ("nsec", "<i8")]
)
_RTP_OUT = np.dtype(
    [("vpt", ">u2"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4"), ("payload", "u1", (160,))]
)
_RTP_IN = np.dtype(
    {
        "names": ["b0", "pt", "seq", "ts"],
        "formats": ["u1", "u1", ">u2", ">u4"],
        "offsets": [0, 1, 2, 4],
        "itemsize": SLOT,
    }
)


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
            return 0
        raise OSError(err, os.strerror(err))
    return result


class _Sender:
    """One socket's streams: their packets live in rows `lo:hi` of the shared array."""

    def __init__(
        self, sock: socket.socket, packets: np.ndarray, lo: int, hi: int, targets: list[int]
    ):
        self.fd = sock.fileno()
        self.count = hi - lo
        self.names = np.zeros(self.count, dtype=_SOCKADDR)
        self.names["family"] = socket.AF_INET
        self.names["port"] = targets[lo:hi]
        self.names["addr"] = 0x7F000001
        self.iov = (_IoVec * self.count)()
        self.vec = (_MMsgHdr * self.count)()
        base = packets.ctypes.data + lo * _RTP_OUT.itemsize
        names = self.names.ctypes.data
        for j in range(self.count):
            self.iov[j].iov_base = base + j * _RTP_OUT.itemsize
            self.iov[j].iov_len = _RTP_OUT.itemsize
            hdr = self.vec[j].msg_hdr
            hdr.msg_name = names + j * _SOCKADDR.itemsize
            hdr.msg_namelen = 16
            hdr.msg_iov = ctypes.addressof(self.iov[j])
            hdr.msg_iovlen = 1

    def send(self) -> int:
        """Send every stream's packet; returns how many the kernel refused (counted, not fatal)."""
        sent = 0
        while sent < self.count:
            n = _sendmmsg(self.fd, ctypes.addressof(self.vec[sent]), self.count - sent, 0)
            if n < 0:
                err = ctypes.get_errno()
                if err == errno.EINTR:
                    continue
                return self.count - sent  # e.g. ENOBUFS: this tick's rest is lost
            sent += n
        return 0


class _Receiver:
    """recvmmsg into fixed buffers; `take` copies the useful columns of what arrived."""

    def __init__(self) -> None:
        self.data = np.zeros(VLEN, dtype=_RTP_IN)
        self.names = np.zeros(VLEN, dtype=_SOCKADDR)
        self.ctrl = np.zeros((VLEN, CTRL), dtype=np.uint8)
        self.iov = (_IoVec * VLEN)()
        self.vec = (_MMsgHdr * VLEN)()
        for j in range(VLEN):
            self.iov[j].iov_base = self.data.ctypes.data + j * SLOT
            self.iov[j].iov_len = SLOT
            hdr = self.vec[j].msg_hdr
            hdr.msg_name = self.names.ctypes.data + j * _SOCKADDR.itemsize
            hdr.msg_iov = ctypes.addressof(self.iov[j])
            hdr.msg_iovlen = 1
            hdr.msg_control = self.ctrl.ctypes.data + j * CTRL
        self.view = np.frombuffer(self.vec, dtype=_MMSG_VIEW)
        self.view["namelen"] = 16
        self.view["controllen"] = CTRL

    def receive(self, fd: int) -> int:
        n = _check(_recvmmsg(fd, ctypes.addressof(self.vec), VLEN, MSG_DONTWAIT, None))
        return n

    def columns(self, n: int, base_sec: int) -> tuple[np.ndarray, ...]:
        """(bridge port, length, first two bytes, seq, ts, arrival) of the first n datagrams;
        the kernel's lengths are reset for the next call."""
        view = self.view
        lengths = view["msg_len"][:n].copy()
        view["namelen"][:n] = 16
        view["controllen"][:n] = CTRL
        stamps = self.ctrl[:n, : _CMSG.itemsize].copy().view(_CMSG).reshape(n)
        ok = (stamps["level"] == socket.SOL_SOCKET) & (stamps["type"] == SO_TIMESTAMPNS)
        arrival = np.where(ok, (stamps["sec"] - base_sec) + stamps["nsec"] * 1e-9, np.nan)
        data = self.data[:n]
        return (
            self.names["port"][:n].astype(np.int32),
            lengths,
            data["b0"].copy(),
            data["pt"].copy(),
            data["seq"].astype(np.int64),
            data["ts"].astype(np.int64),
            arrival,
        )


def _tones(tones: tuple[float, ...]) -> np.ndarray:
    """[tone, frame, 160] µ-law payloads: one second of each tone, 50 frames."""
    from telephony.media.g711 import audioop

    out = np.zeros((len(tones), 50, 160), dtype=np.uint8)
    for t, freq in enumerate(tones):
        w = 2 * math.pi * freq / 8000
        pcm = np.round(8000 * np.sin(w * np.arange(8000))).astype("<i2").tobytes()
        out[t] = np.frombuffer(audioop.lin2ulaw(pcm, 2), dtype=np.uint8).reshape(50, 160)
    return out


def run(
    streams: int,
    warmup: float,
    seconds: float,
    tones: tuple[float, ...],
    send_ports: Any,
    recv_targets: Any,
) -> dict[str, Any]:
    """`send_ports(ports)` tells the driver each stream's address (a port per stream, shared
    within a group); `recv_targets()` returns each stream's bridge port, then waits for "go"
    (the caller's callables speak media_load.py's line protocol)."""
    groups = [(lo, min(streams, lo + GROUP)) for lo in range(0, streams, GROUP)]
    socks = []
    for _ in groups:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    own = [socks[g].getsockname()[1] for g, (lo, hi) in enumerate(groups) for _ in range(lo, hi)]
    send_ports(own)
    targets = recv_targets()
    stream_of_port = np.full(65536, -1, dtype=np.int32)
    stream_of_port[np.asarray(targets)] = np.arange(streams, dtype=np.int32)

    index = np.arange(streams, dtype=np.int64)
    packets = np.zeros(streams, dtype=_RTP_OUT)
    packets["vpt"] = 0x8000  # version 2, PCMU
    packets["ssrc"] = 1000 + index
    tone_of = index % len(tones)
    payloads = _tones(tones)
    senders = [
        _Sender(s, packets, lo, hi, targets) for s, (lo, hi) in zip(socks, groups, strict=True)
    ]
    receiver = _Receiver()
    fds = [s.fileno() for s in socks]
    chunks: list[tuple[np.ndarray, ...]] = []
    refused = 0

    start_mono = time.monotonic()
    start_rt = time.time()
    base_sec = int(start_rt)
    t_from = start_rt - base_sec + warmup
    t_to = t_from + seconds
    times0 = os.times()
    total = int((warmup + seconds + 0.5) / TICK)
    for k in range(total):
        packets["seq"] = (index + k) & 0xFFFF
        packets["ts"] = (k * 160) & 0xFFFFFFFF
        packets["payload"] = payloads[tone_of, k % 50]
        for sender in senders:
            refused += sender.send()
        for fd in fds:  # what arrived since the last tick (kernel timestamps: no hurry)
            while True:
                n = receiver.receive(fd)
                if n:
                    chunks.append(receiver.columns(n, base_sec))
                if n < VLEN:
                    break
        pause = start_mono + (k + 1) * TICK - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    times1 = os.times()
    user, system = times1.user - times0.user, times1.system - times0.system
    wall = time.monotonic() - start_mono
    for s in socks:
        s.close()
    report = _report(chunks, stream_of_port, streams, seconds, t_from, t_to)
    report["phones_cpu_pct"] = 100.0 * (user + system) / wall
    report["phones_user_pct"] = 100.0 * user / wall
    report["phones_refused"] = refused
    return report


def _report(
    chunks: list[tuple[np.ndarray, ...]],
    stream_of_port: np.ndarray,
    streams: int,
    seconds: float,
    t_from: float,
    t_to: float,
) -> dict[str, Any]:
    """The per-stream phones' figures: loss by sequence (RFC 3550 A.3), send gaps as seen on
    arrival, interarrival jitter (RFC 3550 A.8), from every audio packet inside the window."""
    expected = int(streams * seconds / TICK)
    if chunks:
        port, length, b0, pt, seq, ts, arrival = (
            np.concatenate(c) for c in zip(*chunks, strict=True)
        )
        stream = stream_of_port[port]
        keep = (
            (stream >= 0)
            & (length >= 12)
            & ((b0 >> 6) == 2)
            & ((pt & 0x7F) == 0)
            & (arrival >= t_from)
            & (arrival <= t_to)
        )
        stream, seq, ts, arrival = stream[keep], seq[keep], ts[keep], arrival[keep]
    else:
        stream = seq = ts = np.zeros(0, dtype=np.int64)
        arrival = np.zeros(0)
    order = np.argsort(stream, kind="stable")  # within a stream: the order of arrival
    stream, seq, ts, arrival = stream[order], seq[order], ts[order], arrival[order]
    received = len(stream)
    first = np.ones(received, dtype=bool)
    first[1:] = stream[1:] != stream[:-1]
    starts = np.flatnonzero(first)
    counts = np.diff(np.append(starts, received))
    same = ~first
    gaps = np.diff(arrival)[same[1:]] if received else np.zeros(0)
    # extended sequence numbers: signed 16-bit steps summed within each stream
    step = np.zeros(received, dtype=np.int64)
    step[1:] = ((seq[1:] - seq[:-1] + 0x8000) & 0xFFFF) - 0x8000
    step[first] = 0
    ext = np.cumsum(step)
    ext -= np.repeat(ext[starts], counts)
    by_seq = int(np.sum(np.maximum.reduceat(ext, starts) + 1)) if received else 0
    # RFC 3550 jitter, J += (|D| - J) / 16, unrolled: the final J of a stream is a weighted sum
    transit = arrival * 8000.0 - ts
    d = np.zeros(received)
    d[1:] = np.abs(np.diff(transit))
    usable = same & (d < 2.0**30)
    position = np.arange(received) - np.repeat(starts, counts)
    last = np.repeat(counts - 1, counts)
    weight = np.where(usable, (15.0 / 16.0) ** (last - position) / 16.0, 0.0)
    jitter = np.add.reduceat(weight * d, starts) / 8.0 if received else np.zeros(0)
    ordered = np.sort(gaps)
    return {
        "expected": expected,
        "received": received,
        "lost": max(0, by_seq - received),
        "silent_streams": streams - len(starts),
        "gap_mean_ms": 1000 * float(gaps.mean()) if len(gaps) else math.nan,
        "gap_p99_ms": 1000 * float(ordered[int(0.99 * (len(ordered) - 1))])
        if len(ordered)
        else math.nan,
        "gap_max_ms": 1000 * float(ordered[-1]) if len(ordered) else math.nan,
        "gaps_over_30ms_pct": 100.0 * float(np.count_nonzero(gaps > 0.030)) / max(1, len(gaps)),
        "jitter_mean_ms": float(jitter.mean()) if len(jitter) else math.nan,
        "jitter_max_ms": float(jitter.max()) if len(jitter) else math.nan,
    }
