"""SDP (RFC 4566) for G.711 audio and the offer/answer model (RFC 3264).

We offer PCMU, PCMA and telephone-event (RFC 4733); we answer by taking the first offered codec we
support, keeping the offerer's telephone-event payload type, and mirroring its direction
(RFC 3264 6.1). The outcome is a `telephony.types.NegotiatedMedia`, seen from our side.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

from telephony.types import Codec, Direction, NegotiatedMedia

from .errors import IncompatibleMedia, SdpError

DEFAULT_DTMF_PT = 101
MAX_SDP_LINES = 256
_DIRECTIONS = {d.value: d for d in Direction}
_MIRROR = {
    Direction.SENDRECV: Direction.SENDRECV,
    Direction.SENDONLY: Direction.RECVONLY,
    Direction.RECVONLY: Direction.SENDONLY,
    Direction.INACTIVE: Direction.INACTIVE,
}


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One m= section with its c= and a= lines."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    attributes: tuple[tuple[str, str | None], ...] = ()

    def attr(self, name: str) -> list[str | None]:
        return [v for k, v in self.attributes if k == name]

    def rtpmap(self) -> dict[int, str]:
        """payload type -> 'encoding/clock' as the a=rtpmap lines say (upper-cased name)."""
        out: dict[int, str] = {}
        for value in self.attr("rtpmap"):
            if value is None:
                continue
            pt, _, enc = value.partition(" ")
            if pt.isdigit():
                name, _, rest = enc.strip().partition("/")
                out[int(pt)] = f"{name.upper()}/{rest}"
        return out

    @property
    def direction(self) -> Direction | None:
        for k, _ in self.attributes:
            if k in _DIRECTIONS:
                return _DIRECTIONS[k]
        return None


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body: origin, session-level connection/direction, media sections."""

    origin_user: str = "-"
    session_id: int = 0
    session_version: int = 0
    origin_address: str = "0.0.0.0"
    session_name: str = "-"
    connection: str | None = None
    media: tuple[MediaDescription, ...] = ()
    attributes: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError("SDP is not UTF-8") from exc
        lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
        if len(lines) > MAX_SDP_LINES:
            raise SdpError("too many SDP lines")
        if not lines or lines[0].strip() != "v=0":
            raise SdpError("SDP does not start with v=0")
        origin: tuple[str, int, int, str] = ("-", 0, 0, "0.0.0.0")
        name = "-"
        connection: str | None = None
        attributes: list[tuple[str, str | None]] = []
        media: list[_Section] = []
        for line in lines[1:]:
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"bad SDP line {line[:30]!r}")
            key, value = line[0], line[2:].strip()
            if key == "m":
                media.append(_parse_m(value))
            elif key == "o":
                origin = _parse_o(value)
            elif key == "s":
                name = value
            elif key == "c" and media:
                media[-1].connection = _parse_c(value)
            elif key == "c":
                connection = _parse_c(value)
            elif key == "a":
                attr, colon, aval = value.partition(":")
                (media[-1].attributes if media else attributes).append(
                    (attr, aval if colon else None)
                )
        return cls(
            origin_user=origin[0],
            session_id=origin[1],
            session_version=origin[2],
            origin_address=origin[3],
            session_name=name,
            connection=connection,
            media=tuple(m.build() for m in media),
            attributes=tuple(attributes),
        )

    def __bytes__(self) -> bytes:
        addrtype = "IP6" if ":" in self.origin_address else "IP4"
        lines = [
            "v=0",
            f"o={self.origin_user} {self.session_id} {self.session_version} "
            f"IN {addrtype} {self.origin_address}",
            f"s={self.session_name}",
        ]
        if self.connection:
            lines.append(_c_line(self.connection))
        lines.append("t=0 0")
        lines.extend(_a_line(k, v) for k, v in self.attributes)
        for m in self.media:
            lines.append(f"m={m.kind} {m.port} {m.proto} {' '.join(m.formats)}")
            if m.connection:
                lines.append(_c_line(m.connection))
            lines.extend(_a_line(k, v) for k, v in m.attributes)
        return ("\r\n".join(lines) + "\r\n").encode()

    @property
    def session_direction(self) -> Direction | None:
        for k, _ in self.attributes:
            if k in _DIRECTIONS:
                return _DIRECTIONS[k]
        return None

    def audio(self) -> tuple[int, MediaDescription]:
        """Index and section of the first audio stream that is not disabled (port 0)."""
        for idx, m in enumerate(self.media):
            if m.kind == "audio" and m.port != 0 and "RTP/AVP" in m.proto:
                return idx, m
        raise IncompatibleMedia("no active RTP/AVP audio stream")


def _c_line(address: str) -> str:
    return f"c=IN {'IP6' if ':' in address else 'IP4'} {address}"


def _a_line(k: str, v: str | None) -> str:
    return f"a={k}" if v is None else f"a={k}:{v}"


def _parse_o(value: str) -> tuple[str, int, int, str]:
    parts = value.split()
    if len(parts) != 6 or not parts[1].isdigit() or not parts[2].isdigit():
        raise SdpError(f"bad o= line {value[:40]!r}")
    return parts[0], int(parts[1]), int(parts[2]), parts[5]


def _parse_c(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line {value[:40]!r}")
    address = parts[2].split("/")[0]
    try:
        ipaddress.ip_address(address)
    except ValueError as exc:
        raise SdpError(f"c= address is not an IP address: {address[:40]!r}") from exc
    return address


@dataclass
class _Section:
    """An m= section while it is being read."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def build(self) -> MediaDescription:
        return MediaDescription(
            self.kind, self.port, self.proto, self.formats, self.connection, tuple(self.attributes)
        )


def _parse_m(value: str) -> _Section:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"bad m= line {value[:40]!r}")
    port_text = parts[1].split("/")[0]
    if not port_text.isdigit() or int(port_text) > 65535:
        raise SdpError(f"bad m= port {parts[1][:10]!r}")
    return _Section(parts[0], int(port_text), parts[2], tuple(parts[3:]))


def _direction_of(sd: SessionDescription, m: MediaDescription) -> Direction:
    return m.direction or sd.session_direction or Direction.SENDRECV


def _codecs_in(m: MediaDescription) -> list[tuple[int, Codec | None, bool]]:
    """(payload type, codec or None, is telephone-event) for each format, in offer order."""
    rtpmap = m.rtpmap()
    out: list[tuple[int, Codec | None, bool]] = []
    for fmt in m.formats:
        if not fmt.isdigit():
            continue
        pt = int(fmt)
        enc = rtpmap.get(pt)
        if enc is not None and enc.startswith("TELEPHONE-EVENT/8000"):
            out.append((pt, None, True))
        elif (
            (enc is None and pt == 0) or enc == "PCMU/8000" or (enc or "").startswith("PCMU/8000/")
        ):
            out.append((pt, Codec.PCMU if pt == 0 else None, False))
        elif (
            (enc is None and pt == 8) or enc == "PCMA/8000" or (enc or "").startswith("PCMA/8000/")
        ):
            out.append((pt, Codec.PCMA if pt == 8 else None, False))
        else:
            out.append((pt, None, False))
    return out


def _ptime(m: MediaDescription) -> int:
    for v in m.attr("ptime"):
        if v and v.strip().isdigit() and 10 <= int(v.strip()) <= 120:
            return int(v.strip())
    return 20


def make_offer(
    host: str,
    port: int,
    *,
    codecs: tuple[Codec, ...] = (Codec.PCMU, Codec.PCMA),
    dtmf_pt: int | None = DEFAULT_DTMF_PT,
    direction: Direction = Direction.SENDRECV,
    session_id: int = 0,
    session_version: int = 0,
) -> SessionDescription:
    """Our offer: one audio stream with `codecs` in preference order and telephone-event."""
    formats = [str(c.payload_type) for c in codecs]
    attrs: list[tuple[str, str | None]] = [
        ("rtpmap", f"{c.payload_type} {c.name}/8000") for c in codecs
    ]
    if dtmf_pt is not None:
        formats.append(str(dtmf_pt))
        attrs += [("rtpmap", f"{dtmf_pt} telephone-event/8000"), ("fmtp", f"{dtmf_pt} 0-16")]
    attrs += [("ptime", "20"), (direction.value, None)]
    audio = MediaDescription("audio", port, "RTP/AVP", tuple(formats), None, tuple(attrs))
    return SessionDescription(
        origin_user="linkcall",
        session_id=session_id,
        session_version=session_version,
        origin_address=host,
        session_name="linkcall",
        connection=host,
        media=(audio,),
    )


def _remote_address(sd: SessionDescription, m: MediaDescription) -> str:
    address = m.connection or sd.connection
    if address is None:
        raise SdpError("no c= line for the audio stream")
    return address


def _our_direction(remote: Direction, remote_host: str) -> Direction:
    ours = _MIRROR[remote]
    if remote_host in ("0.0.0.0", "::"):  # RFC 2543 style hold: do not send to the peer
        ours = (
            Direction.RECVONLY
            if ours == Direction.SENDRECV
            else (Direction.INACTIVE if ours == Direction.SENDONLY else ours)
        )
    return ours


def answer_offer(
    offer: SessionDescription,
    host: str,
    port: int,
    *,
    supported: tuple[Codec, ...] = (Codec.PCMU, Codec.PCMA),
    session_id: int = 0,
    session_version: int = 0,
    local_direction: Direction = Direction.SENDRECV,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer an offer (RFC 3264 6): pick a codec, mirror the direction, keep stream count."""
    idx, m = offer.audio()
    chosen: tuple[int, Codec] | None = None
    dtmf_pt: int | None = None
    for pt, codec, is_event in _codecs_in(m):
        if is_event and dtmf_pt is None:
            dtmf_pt = pt
        elif codec is not None and codec in supported and chosen is None:
            chosen = (pt, codec)
    if chosen is None:
        raise IncompatibleMedia("offer has no PCMU or PCMA")
    remote_host = _remote_address(offer, m)
    ours = _our_direction(_direction_of(offer, m), remote_host)
    if local_direction != Direction.SENDRECV:
        ours = _combine(ours, local_direction)
    formats = [str(chosen[0])]
    attrs: list[tuple[str, str | None]] = [("rtpmap", f"{chosen[0]} {chosen[1].name}/8000")]
    if dtmf_pt is not None:
        formats.append(str(dtmf_pt))
        attrs += [("rtpmap", f"{dtmf_pt} telephone-event/8000"), ("fmtp", f"{dtmf_pt} 0-16")]
    ptime = _ptime(m)
    attrs += [("ptime", str(ptime)), (ours.value, None)]
    media = []
    for j, other in enumerate(offer.media):
        if j == idx:
            media.append(
                MediaDescription("audio", port, m.proto, tuple(formats), None, tuple(attrs))
            )
        else:  # RFC 3264 6: reject streams we do not take by answering port 0
            media.append(MediaDescription(other.kind, 0, other.proto, other.formats[:1]))
    answer = SessionDescription(
        origin_user="linkcall",
        session_id=session_id,
        session_version=session_version,
        origin_address=host,
        session_name="linkcall",
        connection=host,
        media=tuple(media),
    )
    negotiated = NegotiatedMedia(
        local_host=host,
        local_port=port,
        remote_host=remote_host,
        remote_port=m.port,
        codec=chosen[1],
        dtmf_payload_type=dtmf_pt,
        direction=ours,
        ptime_ms=ptime,
    )
    return answer, negotiated


def _combine(a: Direction, b: Direction) -> Direction:
    send = a in (Direction.SENDRECV, Direction.SENDONLY) and b in (
        Direction.SENDRECV,
        Direction.SENDONLY,
    )
    recv = a in (Direction.SENDRECV, Direction.RECVONLY) and b in (
        Direction.SENDRECV,
        Direction.RECVONLY,
    )
    return {
        (True, True): Direction.SENDRECV,
        (True, False): Direction.SENDONLY,
        (False, True): Direction.RECVONLY,
        (False, False): Direction.INACTIVE,
    }[(send, recv)]


def media_from_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """What our offer and the peer's answer agreed (RFC 3264 7): the first answered codec."""
    _, ours = offer.audio()
    try:
        _, m = answer.audio()
    except IncompatibleMedia as exc:
        raise IncompatibleMedia("answer rejected the audio stream") from exc
    offered = {pt for pt, _, _ in _codecs_in(ours)}
    codec: Codec | None = None
    dtmf_pt: int | None = None
    for pt, c, is_event in _codecs_in(m):
        if is_event and dtmf_pt is None:
            dtmf_pt = pt
        elif c is not None and codec is None and pt in offered:
            codec = c
    if codec is None:
        raise IncompatibleMedia("answer has no codec we offered")
    remote_host = _remote_address(answer, m)
    local_host = ours.connection or offer.connection or offer.origin_address
    ours_dir = _combine(
        _our_direction(_direction_of(answer, m), remote_host), _direction_of(offer, ours)
    )
    return NegotiatedMedia(
        local_host=local_host,
        local_port=ours.port,
        remote_host=remote_host,
        remote_port=m.port,
        codec=codec,
        dtmf_payload_type=dtmf_pt,
        direction=ours_dir,
        ptime_ms=_ptime(m),
    )


def bump_version(sd: SessionDescription) -> SessionDescription:
    """Same session, next o= version (RFC 3264 8: every new offer increments it)."""
    return replace(sd, session_version=sd.session_version + 1)


__all__ = [
    "DEFAULT_DTMF_PT",
    "MediaDescription",
    "SessionDescription",
    "answer_offer",
    "bump_version",
    "make_offer",
    "media_from_answer",
]
