"""G.711 µ-law and A-law to and from 16-bit signed linear PCM (ITU-T G.711).

Linear audio is always 16-bit little-endian (s16le), 8 kHz, mono: nothing in the engine is
mixed or recorded in 8 bits. The C implementation is the standard library's `audioop`
(Python 3.11/3.12) or the `audioop-lts` package (3.13+), which installs the same module.
"""

from __future__ import annotations

import sys
import warnings

from telephony.types import Codec

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop as audioop  # re-exported for mixer, inband and playback

if sys.byteorder != "little":  # audioop works in native order; the engine's PCM is s16le
    raise ImportError("telephony.media assumes a little-endian host")

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
FRAME_SAMPLES = 160  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH
SILENCE_FRAME = bytes(FRAME_BYTES)


def ulaw_to_linear(data: bytes) -> bytes:
    """Expand µ-law octets to s16le samples (one sample per octet)."""
    return audioop.ulaw2lin(data, SAMPLE_WIDTH)


def linear_to_ulaw(pcm: bytes) -> bytes:
    """Compress s16le samples to µ-law octets."""
    return audioop.lin2ulaw(pcm, SAMPLE_WIDTH)


def alaw_to_linear(data: bytes) -> bytes:
    """Expand A-law octets to s16le samples."""
    return audioop.alaw2lin(data, SAMPLE_WIDTH)


def linear_to_alaw(pcm: bytes) -> bytes:
    """Compress s16le samples to A-law octets."""
    return audioop.lin2alaw(pcm, SAMPLE_WIDTH)


def decode(codec: Codec, payload: bytes) -> bytes:
    """Decode a G.711 payload of either law to s16le."""
    if codec is Codec.PCMU:
        return audioop.ulaw2lin(payload, SAMPLE_WIDTH)
    return audioop.alaw2lin(payload, SAMPLE_WIDTH)


def encode(codec: Codec, pcm: bytes) -> bytes:
    """Encode s16le to a G.711 payload of either law."""
    if codec is Codec.PCMU:
        return audioop.lin2ulaw(pcm, SAMPLE_WIDTH)
    return audioop.lin2alaw(pcm, SAMPLE_WIDTH)


def silence_payload(codec: Codec, samples: int = FRAME_SAMPLES) -> bytes:
    """The encoded form of digital silence (0xFF in µ-law, 0xD5 in A-law)."""
    return (b"\xff" if codec is Codec.PCMU else b"\xd5") * samples
