"""SDP offer/answer (RFC 3264) for PCMU/PCMA/telephone-event, hold directions."""

from __future__ import annotations

import pytest

from telephony.sip.errors import IncompatibleMedia, SdpError
from telephony.sip.sdp import SessionDescription, answer_offer, make_offer, media_from_answer
from telephony.types import Codec, Direction

BARESIP_OFFER = (
    b"v=0\r\no=- 1426 1426 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 30012 RTP/AVP 8 0 101\r\nb=AS:64\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
)


def test_offer_round_trip() -> None:
    offer = make_offer("127.0.0.1", 4000, session_id=7)
    assert SessionDescription.parse(bytes(offer)) == offer
    assert b"a=rtpmap:101 telephone-event/8000" in bytes(offer)


def test_answer_takes_offerers_first_codec_and_event_pt() -> None:
    offer = SessionDescription.parse(BARESIP_OFFER)
    answer, media = answer_offer(offer, "127.0.0.1", 5000)
    assert media.codec is Codec.PCMA
    assert media.dtmf_payload_type == 101
    assert (media.remote_host, media.remote_port) == ("127.0.0.1", 30012)
    assert (media.local_host, media.local_port) == ("127.0.0.1", 5000)
    assert media.direction is Direction.SENDRECV
    assert answer.media[0].formats == ("8", "101")


def test_answer_respects_our_supported_list() -> None:
    offer = SessionDescription.parse(BARESIP_OFFER)
    _, media = answer_offer(offer, "127.0.0.1", 5000, supported=(Codec.PCMU,))
    assert media.codec is Codec.PCMU


@pytest.mark.parametrize(
    "theirs, ours",
    [
        ("sendonly", Direction.RECVONLY),
        ("recvonly", Direction.SENDONLY),
        ("inactive", Direction.INACTIVE),
    ],
)
def test_hold_directions_are_mirrored(theirs: str, ours: Direction) -> None:
    offer = SessionDescription.parse(BARESIP_OFFER.replace(b"a=sendrecv", f"a={theirs}".encode()))
    answer, media = answer_offer(offer, "127.0.0.1", 5000)
    assert media.direction is ours
    assert answer.media[0].direction is ours


def test_rfc2543_hold_with_zero_address() -> None:
    offer = SessionDescription.parse(
        BARESIP_OFFER.replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0")
    )
    _, media = answer_offer(offer, "127.0.0.1", 5000)
    assert media.direction is Direction.RECVONLY


def test_incompatible_offer_is_488() -> None:
    offer = SessionDescription.parse(BARESIP_OFFER.replace(b"RTP/AVP 8 0 101", b"RTP/AVP 9 101"))
    with pytest.raises(IncompatibleMedia) as info:
        answer_offer(offer, "127.0.0.1", 5000)
    assert info.value.status == 488


def test_extra_streams_are_rejected_with_port_zero() -> None:
    raw = BARESIP_OFFER + b"m=video 40000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    answer, _ = answer_offer(SessionDescription.parse(raw), "127.0.0.1", 5000)
    assert [m.port for m in answer.media] == [5000, 0]


def test_media_from_answer() -> None:
    offer = make_offer("127.0.0.1", 4000)
    answer = SessionDescription.parse(BARESIP_OFFER.replace(b"RTP/AVP 8 0 101", b"RTP/AVP 0 101"))
    media = media_from_answer(offer, answer)
    assert media.codec is Codec.PCMU
    assert (media.local_port, media.remote_port) == (4000, 30012)


def test_answer_with_codec_we_did_not_offer() -> None:
    offer = make_offer("127.0.0.1", 4000, codecs=(Codec.PCMU,))
    answer = SessionDescription.parse(BARESIP_OFFER.replace(b"RTP/AVP 8 0 101", b"RTP/AVP 8"))
    with pytest.raises(IncompatibleMedia):
        media_from_answer(offer, answer)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"v=1\r\n",
        b"v=0\r\nm=audio x RTP/AVP 0\r\n",
        b"v=0\r\nc=IN IP4 not-an-ip\r\n",
        b"v=0\r\nbad\r\n",
        b"\xff",
    ],
)
def test_malformed_sdp(raw: bytes) -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(raw)
