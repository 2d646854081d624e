"""Fuzz the receive path with >= 100,000 mutated messages: no input may raise past `screen`.

Seeds are the byte fixtures of the other tests plus the captured corpus in captures/. A result
that parsed is read further the way the user agent reads it (Contact, Record-Route, SDP, auth
challenges); only the stack's own documented errors may come out of those reads.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from telephony.sip.digest import Challenge
from telephony.sip.errors import AuthError, IncompatibleMedia, ParseError
from telephony.sip.message import Message, SipRequest, StreamFramer, parse_message
from telephony.sip.screening import Rejected, screen
from telephony.sip.sdp import SessionDescription, answer_offer

from .test_message import COMPACT, INVITE
from .test_sdp import BARESIP_OFFER

CAPTURES = Path(__file__).parent / "captures"
ITERATIONS = 100_000
INTERESTING = [
    b"\r\n",
    b"\r",
    b"\n",
    b":",
    b";",
    b",",
    b'"',
    b"<",
    b">",
    b"\x00",
    b"\xff",
    b" ",
    b"=",
    b"@",
    b"\t",
    b"9" * 12,
    b"-1",
    b"\r\n\r\n",
    b"%",
    b"[",
    b"]",
]

SEEDS = [
    INVITE,
    COMPACT,
    INVITE.replace(
        b"Content-Length: 5\r\n\r\nv=0\r\n",
        b"Content-Length: %d\r\n\r\n" % len(BARESIP_OFFER) + BARESIP_OFFER,
    ),
    b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport=5070\r\n"
    b"From: <sip:1000@127.0.0.1>;tag=a\r\nTo: <sip:1000@127.0.0.1>;tag=b\r\n"
    b"Call-ID: x\r\nCSeq: 1 REGISTER\r\n"
    b'WWW-Authenticate: Digest realm="127.0.0.1", nonce="abc", qop="auth"\r\n'
    b"Content-Length: 0\r\n\r\n",
]


def _corpus() -> list[bytes]:
    files = sorted(CAPTURES.glob("*.sip")) if CAPTURES.exists() else []
    return SEEDS + [f.read_bytes() for f in files]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert an interesting token
            buf[pos:pos] = rng.choice(INTERESTING)
        elif op == 2:  # delete a range
            del buf[pos : pos + rng.randint(1, 20)]
        elif op == 3:  # duplicate a range
            chunk = buf[pos : pos + rng.randint(1, 60)]
            buf[pos:pos] = chunk
        elif op == 4:  # truncate
            del buf[pos:]
        elif op == 5:  # random bytes
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:  # swap two lines
            lines = bytes(buf).split(b"\r\n")
            if len(lines) > 2:
                a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[a], lines[b] = lines[b], lines[a]
                buf = bytearray(b"\r\n".join(lines))
    return bytes(buf)


def read_like_the_ua(msg: Message) -> None:
    """Touch what the UA touches; only the stack's documented errors may escape."""
    try:
        _ = msg.cseq, msg.from_.tag, msg.to.tag, msg.call_id, msg.vias
        msg.name_addrs("Contact")
        msg.name_addrs("Record-Route")
        for value in msg.headers.get_all("WWW-Authenticate") + msg.headers.get_all(
            "Proxy-Authenticate"
        ):
            Challenge.parse(value)
        if msg.body:
            answer_offer(SessionDescription.parse(msg.body), "127.0.0.1", 4000)
        if isinstance(msg, SipRequest):
            _ = msg.uri.transport
    except (ParseError, IncompatibleMedia, AuthError):
        pass


def test_fuzz_receive_path() -> None:
    rng = random.Random(20261130)
    corpus = _corpus()
    counts = {"parsed": 0, "rejected": 0, "answered_400": 0, "stream_errors": 0}
    started = time.monotonic()
    for i in range(ITERATIONS):
        data = mutate(rng, rng.choice(corpus))
        result = screen(data)
        if isinstance(result, Rejected):
            counts["rejected"] += 1
            if result.response is not None:
                counts["answered_400"] += 1
                assert isinstance(parse_message(result.response), object)
        else:
            counts["parsed"] += 1
            read_like_the_ua(result)
        if i % 10 == 0:
            framer = StreamFramer()
            try:
                for part in framer.feed(data):
                    screen(part, stream=True)
            except ParseError:
                counts["stream_errors"] += 1
    elapsed = time.monotonic() - started
    print(
        f"\nfuzz: {ITERATIONS} mutated messages in {elapsed:.1f}s, no unhandled exception: {counts}"
    )
    assert sum(counts[k] for k in ("parsed", "rejected")) == ITERATIONS
    assert counts["parsed"] > 1000 and counts["rejected"] > 1000
