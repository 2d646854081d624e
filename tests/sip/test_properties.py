"""Property-based tests (hypothesis): whatever we can build, we parse back to the same value."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.sip.headers import Headers, Via
from telephony.sip.message import SipRequest, SipResponse, StreamFramer, parse_message
from telephony.sip.sdp import SessionDescription, answer_offer, make_offer
from telephony.sip.uri import NameAddr, SipUri
from telephony.types import Codec, Direction

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
token = st.text(ALNUM + "-.!%*_+`'~", min_size=1, max_size=12)
users = st.text(ALNUM + "-_.!~*'()&=+$,", min_size=1, max_size=16)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.sampled_from(["[::1]", "[2001:db8::7]", "[fe80::1:2]"])
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.one_of(st.none(), st.integers(1, 65535))
param_values = st.one_of(st.none(), st.text(ALNUM + "-._~", min_size=1, max_size=10))
uri_params = st.lists(st.tuples(token, param_values), max_size=3).map(tuple)

uris = st.builds(
    SipUri,
    host=hosts,
    user=st.one_of(st.none(), users),
    port=ports,
    scheme=st.sampled_from(["sip", "sips"]),
    params=uri_params,
)
display_names = st.one_of(st.none(), st.text(ALNUM + ' ,"\\<>;:@é中', min_size=1, max_size=20))
name_addrs = st.builds(NameAddr, uri=uris, display_name=display_names, params=uri_params)
vias = st.builds(
    Via,
    transport=st.sampled_from(["UDP", "TCP", "TLS"]),
    host=hosts,
    port=ports,
    params=st.lists(st.tuples(token, param_values), max_size=3).map(tuple),
)
header_values = st.text(ALNUM + " ,;:=<>\"@/.-_+()[]?!%*'~", max_size=40).map(str.strip)


@st.composite
def messages(draw: st.DrawFn) -> SipRequest | SipResponse:
    h = Headers()
    for via in draw(st.lists(vias, min_size=1, max_size=3)):
        h.add(draw(st.sampled_from(["Via", "v", "VIA"])), str(via))
    h.add("From", str(draw(name_addrs)))
    h.add("t", str(draw(name_addrs)))
    h.add("Call-ID", draw(token))
    for name, value in draw(st.lists(st.tuples(token, header_values), max_size=5)):
        if name.lower() not in ("l", "content-length"):
            h.add("X-" + name, value)
    body = draw(st.binary(max_size=200))
    if draw(st.booleans()):
        method = draw(token)
        h.add("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")
        return SipRequest(method=method, uri=draw(uris), headers=h, body=body)
    h.add("CSeq", f"1 {draw(token)}")
    reason = draw(st.text(ALNUM + " -", max_size=20)).strip()
    return SipResponse(status=draw(st.integers(100, 699)), reason=reason, headers=h, body=body)


@given(uris)
def test_uri_round_trip(uri: SipUri) -> None:
    assert SipUri.parse(str(uri)) == uri


@given(name_addrs)
def test_name_addr_round_trip(value: NameAddr) -> None:
    assert NameAddr.parse(str(value)) == value


@given(vias)
def test_via_round_trip(via: Via) -> None:
    assert Via.parse(str(via)) == via


@settings(max_examples=300)
@given(messages())
def test_message_round_trip(msg: SipRequest | SipResponse) -> None:
    data = bytes(msg)
    parsed = parse_message(data)
    assert parsed == msg
    assert bytes(parsed) == data
    assert parsed.vias == msg.vias
    assert parsed.from_ == NameAddr.parse(msg.headers.get("From") or "")


@settings(max_examples=100)
@given(st.lists(messages(), min_size=1, max_size=4), st.integers(1, 50))
def test_stream_framing_any_chunking(msgs: list[SipRequest | SipResponse], chunk: int) -> None:
    stream = b"".join(bytes(m) for m in msgs)
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(stream), chunk):
        out += framer.feed(stream[i : i + chunk])
    assert [parse_message(b, require_length=True) for b in out] == msgs


@given(
    ipv4,
    st.integers(1, 65535),
    st.permutations([Codec.PCMU, Codec.PCMA]),
    st.one_of(st.none(), st.integers(96, 127)),
    st.sampled_from(list(Direction)),
)
def test_sdp_offer_answer(
    host: str, port: int, codecs: list[Codec], dtmf: int | None, direction: Direction
) -> None:
    offer = make_offer(host, port, codecs=tuple(codecs), dtmf_pt=dtmf, direction=direction)
    parsed = SessionDescription.parse(bytes(offer))
    assert parsed == offer
    answer, media = answer_offer(parsed, "127.0.0.1", 4000)
    assert media.codec is codecs[0]
    assert media.dtmf_payload_type == dtmf
    assert SessionDescription.parse(bytes(answer)) == answer
