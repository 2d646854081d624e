"""G.711 laws against ITU-T G.711 code points, and the quality of a round trip."""

from __future__ import annotations

import math
from array import array

import numpy as np
import pytest

from telephony.media import g711
from telephony.types import Codec


def _s16(*values: int) -> bytes:
    return array("h", values).tobytes()


def test_ulaw_code_points() -> None:
    assert g711.ulaw_to_linear(bytes([0xFF, 0x7F, 0x00, 0x80])) == _s16(0, 0, -32124, 32124)
    assert g711.linear_to_ulaw(_s16(0, 32767, -32768)) == bytes([0xFF, 0x80, 0x00])


def test_alaw_code_points() -> None:
    assert g711.alaw_to_linear(bytes([0xD5, 0x55, 0xAA, 0x2A])) == _s16(8, -8, 32256, -32256)
    assert g711.linear_to_alaw(_s16(0, 32767, -32768)) == bytes([0xD5, 0xAA, 0x2A])


@pytest.mark.parametrize("codec", [Codec.PCMU, Codec.PCMA])
def test_every_code_word_survives_decode_encode(codec: Codec) -> None:
    words = bytes(range(256))
    decoded = g711.decode(codec, words)
    assert g711.decode(codec, g711.encode(codec, decoded)) == decoded
    assert len(decoded) == 512


@pytest.mark.parametrize("codec", [Codec.PCMU, Codec.PCMA])
def test_round_trip_snr_of_a_quiet_caller_is_plain_g711_quality(codec: Codec) -> None:
    amp = 32767 * 10 ** (-20 / 20)  # a caller at -20 dBFS
    pcm = array("h", (round(amp * math.sin(2 * math.pi * 1004 * i / 8000)) for i in range(8000)))
    out = np.frombuffer(g711.decode(codec, g711.encode(codec, pcm.tobytes())), dtype="<i2")
    ref = np.asarray(pcm, dtype=np.float64)
    snr = 10 * math.log10(np.sum(ref**2) / np.sum((ref - out) ** 2))
    assert snr > 33.0  # the 8-bit linear path of the old stack gave 8.6 dB


@pytest.mark.parametrize("codec", [Codec.PCMU, Codec.PCMA])
def test_silence_payload_decodes_to_near_zero(codec: Codec) -> None:
    pcm = np.frombuffer(g711.decode(codec, g711.silence_payload(codec)), dtype="<i2")
    assert len(pcm) == 160 and np.max(np.abs(pcm)) <= 8
