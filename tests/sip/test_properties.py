"""Property-based tests (hypothesis): whatever we can build, we parse back to the same value."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.sip.builder import make_response
from telephony.sip.headers import Headers, Via
from telephony.sip.message import SipRequest, SipResponse, StreamFramer, parse_message
from telephony.sip.sdp import SessionDescription, answer_offer, make_offer
from telephony.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    TimerConfig,
)
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


# -- transactions: any order of responses, requests and time never breaks the state table ------

_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("resp"), st.sampled_from([100, 180, 183, 200, 202, 302, 404, 486, 503])),
        st.tuples(st.just("time"), st.floats(0.0, 40.0)),
        st.tuples(st.just("req"), st.sampled_from(["same", "ACK"])),
    ),
    max_size=30,
)


def _request(method: str) -> SipRequest:
    h = Headers()
    h.add("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKprop;rport")
    h.add("From", "<sip:a@h>;tag=1")
    h.add("To", "<sip:b@h>")
    h.add("Call-ID", "prop")
    h.add("CSeq", f"1 {method}")
    return SipRequest(method=method, uri=SipUri("h", user="b"), headers=h)


@settings(max_examples=300)
@given(st.sampled_from(["ci", "cn", "si", "sn"]), st.booleans(), _STEPS)
def test_transactions_survive_any_sequence(
    kind: str, reliable: bool, steps: list[tuple[str, object]]
) -> None:
    t = TimerConfig()
    now = 0.0
    method = "INVITE" if kind in ("ci", "si") else "BYE"
    req = _request(method)
    tx: object
    if kind == "ci":
        tx = ClientInviteTransaction(req, ("h", 5060), reliable=reliable, timers=t)
        tx.start(now)
    elif kind == "cn":
        tx = ClientNonInviteTransaction(req, ("h", 5060), reliable=reliable, timers=t)
        tx.start(now)
    elif kind == "si":
        tx = ServerInviteTransaction(req, reliable=reliable, timers=t)
    else:
        tx = ServerNonInviteTransaction(req, reliable=reliable, timers=t)
    for step, value in steps:
        if step == "time":
            now += float(value)  # type: ignore[arg-type]
            tx.on_timer(now)  # type: ignore[attr-defined]
        elif step == "resp":
            resp = make_response(req, int(value), to_tag="x")  # type: ignore[call-overload]
            if kind.startswith("c"):
                tx.on_message(resp, now)  # type: ignore[attr-defined]
            else:
                tx.respond(resp, now)  # type: ignore[attr-defined]
        elif kind.startswith("s"):
            tx.on_message(_request("ACK") if value == "ACK" else req, now)  # type: ignore[attr-defined]
    # whatever happened, every transaction ends once enough time has passed
    for _ in range(200):
        due = tx.next_deadline()  # type: ignore[attr-defined]
        if due is None:
            break
        now = max(now, due)
        tx.on_timer(now)  # type: ignore[attr-defined]
    assert tx.next_deadline() is None  # type: ignore[attr-defined]
