"""Structure-aware SIP fuzzing through a live user agent (issue 13): trusted, untrusted, in-dialog.

One started `UserAgent` (UDP on 127.0.0.1, trunk peer 127.0.0.1: the trusted source) with a
live answered call to a second UA (the in-dialog target). Each case builds a request from a
grammar (method, Request-URI, Via with its parameters, From/To with tags, Call-ID, CSeq,
Contact, Max-Forwards, Content-Type/Length, Authorization, Record-Route, an SDP body) whose
fields are mutated one by one (values from a list of hostile ones: other addresses, huge
numbers, CRLF, NUL, quotes, brackets, unicode, empty), then sometimes mutated byte-wise, and
hands it to the UA where its transport would: the transaction layer's receive callback, with
a source address that is

* trusted (127.0.0.1, the trunk peer),
* untrusted (a random 127.x.y.z, so the per-source rate limit sees many sources), or
* in-dialog: Call-ID and tags of the live call, from the call's peer or from a stranger.

Inbound legs that reach the application are randomly rung, answered, rejected or left. What
the UA sends is kept on loopback (a send guard drops anything else before any name lookup).

Counted: cases, what the edge refused by reason, and every error the UA logged (the
dispatcher's "error handling a message" and a failed task are errors; the parser's own
`ParseError`, answered 400 or dropped, is not). The run fails if any error was logged.

    flock /tmp/linkcall-heavy.lock .venv/bin/python benchmarks/sip_fuzz.py --cases 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

from telephony.sip.leg import Leg
from telephony.sip.transaction import TimerConfig
from telephony.sip.transport import Address
from telephony.sip.ua import UAConfig, UserAgent

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REGISTER", "UPDATE", "X-Y"]
HOSTILE = [
    "", " ", "\r\n", "\r\nX-Injected: 1", "\x00", "\xff", '"', "<", ">", ";", ",", "=", "%00",
    "999999999999999999999", "-1", "0", "4294967296", "a" * 300, "[::1]", "[", "127.0.0.1",
    "203.0.113.50", "224.0.0.1", "0.0.0.0", "::", "localhost", "例え", "\t", "sip:", "sips:x@y",
    "tel:+123", "z9hG4bK", "tag=", ";received=203.0.113.50", ";rport=1", ";maddr=224.0.0.1",
]  # fmt: skip


@dataclass
class Fields:
    method: str
    ruri: str
    via_host: str
    via_port: str
    via_params: str
    from_: str
    from_tag: str
    to: str
    to_tag: str
    call_id: str
    cseq_num: str
    cseq_method: str
    contact: str
    max_forwards: str
    content_type: str
    extra: list[str] = field(default_factory=list)
    sdp: dict[str, str] = field(default_factory=dict)
    length_delta: int = 0

    def render(self) -> bytes:
        body = sdp_body(self.sdp) if self.sdp else ""
        to_tag = f";tag={self.to_tag}" if self.to_tag else ""
        lines = [
            f"{self.method} {self.ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.via_host}:{self.via_port};branch=z9hG4bK{self.via_params}",
            f"From: {self.from_};tag={self.from_tag}",
            f"To: {self.to}{to_tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq_num} {self.cseq_method}",
            f"Contact: {self.contact}",
            f"Max-Forwards: {self.max_forwards}",
            *self.extra,
        ]
        if body:
            lines.append(f"Content-Type: {self.content_type}")
        lines.append(f"Content-Length: {max(0, len(body.encode()) + self.length_delta)}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8", "surrogateescape")


def sdp_body(f: dict[str, str]) -> str:
    return (
        f"v={f['v']}\r\no=x {f['sess']} 1 IN IP4 {f['c']}\r\ns=-\r\nc=IN {f['ip']} {f['c']}\r\n"
        f"t=0 0\r\nm=audio {f['port']} {f['proto']} {f['fmt']}\r\na=rtpmap:{f['rtpmap']}\r\n"
        f"a={f['dir']}\r\n"
    )


class Grammar:
    """Well-formed requests and their structure-aware mutations."""

    def __init__(self, rng: random.Random, ua_port: int) -> None:
        self.rng = rng
        self.port = ua_port
        self.n = 0

    def base(self, method: str, dialog: tuple[str, str, str] | None, src: Address) -> Fields:
        self.n += 1
        call_id, local_tag, remote_tag = dialog or (f"fz{self.n}", "", f"r{self.n}")
        f = Fields(
            method=method,
            ruri=f"sip:1000@127.0.0.1:{self.port}",
            via_host=src[0],
            via_port=str(src[1]),
            via_params=f"fz{self.n};rport",
            from_="<sip:666@127.0.0.1>",  # the live call's caller is 2001
            from_tag=remote_tag,
            to="<sip:1000@127.0.0.1>",
            to_tag=local_tag,
            call_id=call_id,
            cseq_num=str(self.rng.choice([1, 2, 10**6, self.n])),
            cseq_method=method,
            contact=f"<sip:2001@{src[0]}:{src[1]}>",
            max_forwards="70",
            content_type="application/sdp",
        )
        if method in ("INVITE", "ACK") and self.rng.random() < 0.8:
            f.sdp = {
                "v": "0", "sess": str(self.n), "ip": "IP4", "c": "127.0.0.1",
                "port": str(self.rng.choice([40000, 0, 1, 80, 65535, 70000])),
                "proto": "RTP/AVP", "fmt": "0 8 101", "rtpmap": "0 PCMU/8000", "dir": "sendrecv",
            }  # fmt: skip
        if method == "INFO":
            f.content_type = "application/dtmf-relay"
            f.extra.append("X-Body: Signal=5")
        return f

    def mutate(self, f: Fields) -> Fields:
        rng = self.rng
        for _ in range(rng.randint(0, 3)):
            name = rng.choice(
                ["ruri", "via_host", "via_port", "via_params", "from_", "from_tag", "to",
                 "to_tag", "call_id", "cseq_num", "cseq_method", "contact", "max_forwards",
                 "content_type", "sdp", "extra", "length", "method"]
            )  # fmt: skip
            value = rng.choice(HOSTILE)
            if name == "sdp":
                if f.sdp:
                    f.sdp[rng.choice(list(f.sdp))] = value
            elif name == "extra":
                f.extra.append(
                    rng.choice(["Authorization", "Record-Route", "Route", "Via", "Expires",
                                "Proxy-Require", "Require", "Content-Encoding", "i", "l", "v"])
                    + ": " + rng.choice([value, 'Digest username="x", realm="r", nonce="1:2", '
                                         'uri="sip:x", response="00"', "<sip:127.0.0.1;lr>"])
                )  # fmt: skip
            elif name == "length":
                f.length_delta = rng.choice([-5, -1, 1, 10, 10**6])
            elif name == "method":
                f.method = rng.choice(METHODS)
            else:
                current = getattr(f, name)
                setattr(f, name, rng.choice([value, current + value, value + current]))
        return f


def byte_mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(buf) + 1)
        op = rng.randrange(4)
        if op == 0 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op == 1:
            del buf[pos : pos + rng.randint(1, 30)]
        elif op == 2:
            buf[pos:pos] = rng.choice([b"\r\n", b"\x00", b":", b";", b"\r\n\r\n", b"\xff"])
        else:
            del buf[pos:]
    return bytes(buf)


class ErrorCounter(logging.Handler):
    """Every record at ERROR or above from our packages (an unexpected exception)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def live_call(peer: UserAgent, ours: asyncio.Queue[Leg]) -> tuple[Leg, Leg]:
    """A call from the peer UA (2001), answered: the target of the in-dialog cases."""
    leg = await peer.dial("1000", local_media=("127.0.0.1", 41000), ring_timeout=5)
    inbound = await asyncio.wait_for(ours.get(), 5)
    await inbound.answer(("127.0.0.1", 41100))
    if not await leg.wait_answered(5):
        raise RuntimeError("the in-dialog call did not connect")
    return leg, inbound


async def drive_legs(
    ua: UserAgent, rng: random.Random, stop: asyncio.Event, ours: asyncio.Queue[Leg]
) -> None:
    """The application's part: ring, answer, reject or ignore what arrives (the peer UA's
    own calls, from 2001, go to `ours`)."""
    while not stop.is_set():
        try:
            leg = await asyncio.wait_for(ua.incoming.get(), 0.5)
        except TimeoutError:
            continue
        if leg.remote_number == "2001":
            ours.put_nowait(leg)
            continue
        action = rng.randrange(4)
        try:
            if action == 0:
                await leg.ring()
            elif action == 1:
                await leg.answer(("127.0.0.1", 42000))
            elif action == 2:
                await leg.reject(rng.choice([486, 603, 480]))
        except Exception as exc:  # a leg refusing an action is the API's documented behaviour
            if type(exc).__module__.startswith("telephony.sip"):
                continue
            raise


async def drained(ua: UserAgent, below: int) -> None:
    """Back-pressure: wait (bounded) until the UA's inbox holds at most `below` messages."""
    async with asyncio.timeout(30):
        while ua.endpoint._inbox.qsize() > below:  # noqa: ASYNC110 (the inbox has no event)
            await asyncio.sleep(0.001)


def guard_sends(ua: UserAgent, counts: Counter[str]) -> None:
    """Keep the UA's packets on loopback (and out of DNS): drop any other destination."""
    transport = ua.endpoint.transport
    assert transport is not None
    real_send = transport.send

    async def send(data: bytes, dest: Address) -> None:
        if not dest[0].startswith("127.") or not (0 < dest[1] < 65536):
            counts["send_dropped_off_loopback"] += 1
            return
        await real_send(data, dest)

    transport.send = send  # type: ignore[method-assign]


async def run(cases: int, seed: int) -> int:
    errors = ErrorCounter()
    for name in ("telephony", "asyncio"):
        logging.getLogger(name).addHandler(errors)
    logging.getLogger("telephony").setLevel(logging.ERROR)
    rng = random.Random(seed)
    pa, pb = free_udp_port(), free_udp_port()
    ua = UserAgent(
        UAConfig("127.0.0.1", pa, None, "1000", "x", trunk_peer=("127.0.0.1", pb), timers=FAST)
    )
    peer = UserAgent(
        UAConfig("127.0.0.1", pb, None, "2001", "x", trunk_peer=("127.0.0.1", pa), timers=FAST)
    )
    await ua.start()
    await peer.start()
    counts: Counter[str] = Counter()
    guard_sends(ua, counts)
    stop = asyncio.Event()
    ours: asyncio.Queue[Leg] = asyncio.Queue()
    driver = asyncio.create_task(drive_legs(ua, rng, stop, ours))
    grammar = Grammar(rng, pa)
    started = time.monotonic()
    try:
        _, callee = await live_call(peer, ours)
        for i in range(cases):
            if callee.ended:
                _, callee = await live_call(peer, ours)
            kind = rng.choice(["trusted", "untrusted", "dialog_peer", "dialog_stranger"])
            dialog = None
            if kind.startswith("dialog"):
                d = callee.dialog
                assert d is not None
                dialog = (d.call_id, d.local_tag, d.remote_tag)
            src = (
                ("127.0.0.1", pb)
                if kind in ("trusted", "dialog_peer")
                else (f"127.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                      rng.randrange(1024, 65535))
            )  # fmt: skip
            fields = grammar.mutate(grammar.base(rng.choice(METHODS), dialog, src))
            data = fields.render()
            if rng.random() < 0.2:
                data = byte_mutate(rng, data)
            counts[kind] += 1
            ua.endpoint._enqueue(data, src)  # the transport's receive callback
            if i % 64 == 0:
                await drained(ua, 256)
            if i and i % 100_000 == 0:
                rate = i / (time.monotonic() - started)
                print(f"{i} cases, {rate:.0f}/s, errors {len(errors.records)}", flush=True)
        await drained(ua, 0)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await driver
        await peer.stop()
        await ua.stop()
    elapsed = time.monotonic() - started
    refused = ua.refusals
    print(f"\n{cases} cases in {elapsed:.0f} s ({cases / elapsed:.0f}/s), seed {seed}")
    print(f"sources: {dict(counts)}")
    print(f"refused at the edge: {refused}")
    print(f"inbox overflow drops: {ua.endpoint.dropped}")
    print(f"errors logged (unexpected exceptions): {len(errors.records)}")
    for record in errors.records[:20]:
        print(" ", record.getMessage(), record.exc_info[1] if record.exc_info else "")
    return 1 if errors.records else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=20261206)
    args = p.parse_args(argv)
    return asyncio.run(run(args.cases, args.seed))


if __name__ == "__main__":
    sys.exit(main())
