"""Conferences: N-1 mixing of legs in 16-bit linear, mute, hold, and recording taps.

Each tick a conference pulls one frame from every leg, gives each leg the sum of all the other
speaking legs (never its own voice), and hands the taps the mix of every speaking leg plus each
leg's own received signal. Muted legs hear everyone but are heard by no one; held legs hear
hold music (or silence) and are heard by no one. Taps always get every leg's own track.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from telephony.media.endpoint import EndpointState, RtpEndpoint
from telephony.media.g711 import FRAME_BYTES, SILENCE_FRAME
from telephony.media.mixer import mix, mix_and_minus, mix_minus
from telephony.media.playback import Prompt
from telephony.media.ticker import Ticker

log = logging.getLogger(__name__)


class FrameTap(Protocol):
    """A recorder fed from the tick: 160 s16le samples per 20 ms of the conference mix and of
    each leg (keyed by role). It must be cheap and must not block (buffer, write elsewhere)."""

    def write(self, mixed: bytes, tracks: Mapping[str, bytes]) -> None: ...


@runtime_checkable
class OrderedFrameTap(Protocol):
    """A FrameTap that also takes the legs' frames in role order, saving the conference a
    mapping per tick: `roles` is the same tuple object every tick until legs join, leave, mute
    or hold (a tap may key a cache on its identity) and `frames[i]` is the frame of `roles[i]`.
    Like `write`, it must copy what it keeps (holding the tick's frames costs memory: issue 17)."""

    def write(self, mixed: bytes, tracks: Mapping[str, bytes]) -> None: ...

    def write_frames(
        self, mixed: bytes, roles: tuple[str, ...], frames: Sequence[bytes]
    ) -> None: ...


Feed = Callable[[bytes, tuple[str, ...], Sequence[bytes]], None]


def _feed_for(tap: FrameTap) -> Feed:
    """How the tick hands `tap` its frames: in role order, or as a mapping built per tick."""
    if isinstance(tap, OrderedFrameTap):
        return tap.write_frames
    write = tap.write

    def feed(mixed: bytes, roles: tuple[str, ...], frames: Sequence[bytes]) -> None:
        write(mixed, dict(zip(roles, frames, strict=False)))  # same length

    return feed


@dataclass(slots=True)
class _Leg:
    endpoint: RtpEndpoint
    role: str
    muted: bool = False
    held: bool = False
    music_pos: int = 0

    @property
    def speaks(self) -> bool:
        return not (self.muted or self.held)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a tick needs, worked out again whenever legs join, leave, mute or hold."""

    legs: tuple[_Leg, ...]
    speakers: tuple[int, ...] | None  # indexes of the legs heard; None: every leg
    endpoints: tuple[RtpEndpoint, ...]
    roles: tuple[str, ...]
    held: bool  # a leg is on hold (it hears music, not the conference)


class Conference:
    """Legs mixed together; driven by the engine's ticker while it has legs."""

    def __init__(self, ticker: Ticker, name: str = "conference", hold_music: Prompt | None = None):
        self.name = name
        self.hold_music = hold_music
        self.failed_taps: list[FrameTap] = []
        self.error: Exception | None = None  # set when a tick failed: the mixing stopped
        self._ticker = ticker
        self._legs: dict[RtpEndpoint, _Leg] = {}
        self._taps: list[tuple[FrameTap, Feed]] = []
        self._plan = _Plan((), (), (), (), held=False)

    def __repr__(self) -> str:
        return f"<Conference {self.name} legs={len(self._legs)}>"

    def __len__(self) -> int:
        return len(self._legs)

    @property
    def roles(self) -> dict[str, RtpEndpoint]:
        return {leg.role: ep for ep, leg in self._legs.items()}

    def add(self, endpoint: RtpEndpoint, role: str) -> None:
        """Join a leg under a role name (unique within the conference, used by taps)."""
        if endpoint.conference is not None:
            raise ValueError(f"{endpoint.label} is already in {endpoint.conference}")
        if any(leg.role == role for leg in self._legs.values()):
            raise ValueError(f"role {role!r} already taken in {self.name}")
        endpoint.ensure_open()
        self._ticker.discard(endpoint)
        endpoint.conference = self
        self._legs[endpoint] = _Leg(endpoint, role)
        self._replan()
        self._ticker.add(self)

    def remove(self, endpoint: RtpEndpoint) -> None:
        """Take a leg out; it goes on alone (prompts or silence) until closed."""
        leg = self._legs.pop(endpoint, None)
        if leg is None:
            return
        endpoint.conference = None
        self._replan()
        if not self._legs:
            self._ticker.discard(self)
        if endpoint.state is not EndpointState.CLOSED:
            self._ticker.add(endpoint)

    def mute(self, endpoint: RtpEndpoint, muted: bool = True) -> None:
        """A muted leg still hears the others; nobody hears it."""
        self._legs[endpoint].muted = muted
        self._replan()

    def hold(self, endpoint: RtpEndpoint, held: bool = True) -> None:
        """A held leg hears hold music (or silence); nobody hears it."""
        leg = self._legs[endpoint]
        leg.held = held
        leg.music_pos = 0
        self._replan()

    def add_tap(self, tap: FrameTap) -> None:
        """Feed `tap` every tick (in role order if it is an OrderedFrameTap)."""
        self._taps.append((tap, _feed_for(tap)))

    def remove_tap(self, tap: FrameTap) -> None:
        self._taps = [e for e in self._taps if e[0] is not tap]  # never mutated while ticking

    def _replan(self) -> None:
        legs = tuple(self._legs.values())
        speakers = tuple(i for i, leg in enumerate(legs) if leg.speaks)
        self._plan = _Plan(
            legs,
            speakers if len(speakers) < len(legs) else None,
            tuple(leg.endpoint for leg in legs),
            tuple(leg.role for leg in legs),
            held=any(leg.held for leg in legs),
        )

    def tick(self, index: int, now: float) -> None:
        plan = self._plan
        frames = []
        for ep in plan.endpoints:  # a loop, not a comprehension: that is a call per tick (3.11)
            frames.append(ep.pull())
        taps = self._taps
        speakers = plan.speakers
        if speakers is None:  # everyone speaks: the usual case
            if taps:
                mixed, heard = mix_and_minus(frames)
            else:
                mixed, heard = SILENCE_FRAME, mix_minus(frames)  # no tap wants the mix
        else:
            talk = [frames[i] for i in speakers]
            minus = dict(zip(speakers, mix_minus(talk), strict=True))
            mixed = mix(talk)
            heard = [minus.get(i, mixed) for i in range(len(frames))]
        if not plan.held:  # the usual case; the lengths are equal (zip's strict= costs per tick)
            for ep, out in zip(plan.endpoints, heard):  # noqa: B905
                ep.push(out, index)
        else:
            for leg, out in zip(plan.legs, heard, strict=True):
                leg.endpoint.push(self._music(leg) if leg.held else out, index)
        if taps:
            roles = plan.roles
            for entry in taps:
                try:
                    entry[1](mixed, roles, frames)
                except Exception:
                    self._detach_tap(entry)

    def tick_failed(self, error: Exception) -> None:
        self.error = error

    def _music(self, leg: _Leg) -> bytes:
        music = self.hold_music
        if music is None:
            return SILENCE_FRAME
        pos = leg.music_pos if leg.music_pos < len(music.pcm) else 0
        leg.music_pos = pos + FRAME_BYTES
        return music.pcm[pos : pos + FRAME_BYTES]

    def _detach_tap(self, entry: tuple[FrameTap, Feed]) -> None:
        """A tap raised: log it, stop feeding it, keep it in `failed_taps`."""
        tap = entry[0]
        log.exception("%s: recording tap %r failed; detached", self.name, tap)
        # a new list: the tick is iterating over the old one, and the taps after this one must
        # still get this tick's frames (their recordings would be a frame short)
        self._taps = [e for e in self._taps if e is not entry]
        self.failed_taps.append(tap)
