"""The control channel between the service and a media worker process: one JSON object per line.

Sans-IO: `encode()` turns a message into bytes, `decode()` checks one line and returns the
message; the values that cross the channel (negotiated media, key presses, leg counters) have a
plain form here. Audio never crosses it: every leg of a call lives in one worker.

Requests from the service carry an `id` and are answered by a `reply` with the same `id`
(`ok` true with results, or false with `error` and `kind`); the other commands are one-way and
applied in order. Events from the worker (`ready`, `digit`, `played`, `stats`,
`recording_error`) carry no `id`.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from telephony.media.stats import LegStats
from telephony.types import Codec, Direction, DtmfDigit, NegotiatedMedia

MAX_LINE = 1 << 20  # a stats event of ~1,000 legs is ~100 KiB

Message = dict[str, Any]

# commands the service sends; the ones answered by a reply are the requests
REQUESTS = frozenset({"open", "close", "send_dtmf", "finalise"})
COMMANDS = REQUESTS | frozenset(
    {
        "configure",
        "conference",
        "add",
        "remove",
        "mute",
        "hold",
        "play",
        "stop_playback",
        "inject_dtmf",
        "record",
        "host",
    }
)
EVENTS = frozenset({"ready", "reply", "digit", "played", "stats", "recording_error"})


class ProtocolError(ValueError):
    """A line that is not a message of this protocol."""


def encode(message: Message) -> bytes:
    """One message as one line (compact JSON, newline-terminated)."""
    if message.get("op") not in COMMANDS | EVENTS:
        raise ProtocolError(f"unknown op {message.get('op')!r}")
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Message:
    """One line back into a message; ProtocolError names what is wrong."""
    if len(line) > MAX_LINE:
        raise ProtocolError(f"line of {len(line)} bytes exceeds {MAX_LINE}")
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    op = message.get("op")
    if op not in COMMANDS | EVENTS:
        raise ProtocolError(f"unknown op {op!r}")
    if (op in REQUESTS or op == "reply") and not isinstance(message.get("id"), int):
        raise ProtocolError(f"{op} without an integer id")
    return message


def media_to_wire(media: NegotiatedMedia) -> list[Any]:
    return [
        media.local_host,
        media.local_port,
        media.remote_host,
        media.remote_port,
        media.codec.name,
        media.dtmf_payload_type,
        media.direction.value,
        media.ptime_ms,
    ]


def media_from_wire(v: list[Any]) -> NegotiatedMedia:
    if not isinstance(v, list) or len(v) != 8:
        raise ProtocolError(f"negotiated media: 8 fields expected, got {v!r}")
    lh, lp, rh, rp, codec, dtmf, direction, ptime = v
    return NegotiatedMedia(
        str(lh), int(lp), str(rh), int(rp), Codec[codec], dtmf, Direction(direction), int(ptime)
    )


def digit_to_wire(d: DtmfDigit) -> list[Any]:
    return [d.digit, d.source, d.at, d.duration_ms]


def digit_from_wire(v: list[Any]) -> DtmfDigit:
    if not isinstance(v, list) or len(v) != 4:
        raise ProtocolError(f"digit: 4 fields expected, got {v!r}")
    digit, source, at, duration = v
    if source not in ("rfc4733", "info", "inband"):
        raise ProtocolError(f"digit: unknown source {source!r}")
    return DtmfDigit(str(digit), source, float(at), int(duration))


_COUNTERS = [f.name for f in fields(LegStats) if f.name != "remote"]


def stats_to_wire(s: LegStats) -> list[Any]:
    """The leg's counters (RTCP feedback stays in the worker)."""
    return [getattr(s, name) for name in _COUNTERS]


def stats_from_wire(v: list[Any]) -> LegStats:
    if not isinstance(v, list) or len(v) != len(_COUNTERS):
        raise ProtocolError(f"leg stats: {len(_COUNTERS)} fields expected")
    return LegStats(**dict(zip(_COUNTERS, v, strict=True)))
