"""Conferences: N-1 mixing of legs in 16-bit linear, mute, hold, and recording taps.

Each tick a conference pulls one frame from every leg, gives each leg the sum of all the other
speaking legs (never its own voice), and hands the taps the mix of every speaking leg plus each
leg's own received signal. Muted legs hear everyone but are heard by no one; held legs hear
hold music (or silence) and are heard by no one. Taps always get every leg's own track.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

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


class Conference:
    """Legs mixed together; driven by the engine's ticker while it has legs."""

    def __init__(self, ticker: Ticker, name: str = "conference", hold_music: Prompt | None = None):
        self.name = name
        self.hold_music = hold_music
        self.failed_taps: list[FrameTap] = []
        self.error: Exception | None = None  # set when a tick failed: the mixing stopped
        self._ticker = ticker
        self._legs: dict[RtpEndpoint, _Leg] = {}
        self._taps: list[FrameTap] = []
        self._plan = _Plan((), (), (), ())

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
        self._taps.append(tap)

    def remove_tap(self, tap: FrameTap) -> None:
        if tap in self._taps:
            self._taps.remove(tap)

    def _replan(self) -> None:
        legs = tuple(self._legs.values())
        speakers = tuple(i for i, leg in enumerate(legs) if leg.speaks)
        self._plan = _Plan(
            legs,
            speakers if len(speakers) < len(legs) else None,
            tuple(leg.endpoint for leg in legs),
            tuple(leg.role for leg in legs),
        )

    def tick(self, index: int, now: float) -> None:
        plan = self._plan
        frames = [ep.pull() for ep in plan.endpoints]
        speakers = plan.speakers
        if speakers is None:  # everyone speaks: the usual case
            if self._taps:
                mixed, heard = mix_and_minus(frames)
            else:
                mixed, heard = SILENCE_FRAME, mix_minus(frames)  # no tap wants the mix
        else:
            talk = [frames[i] for i in speakers]
            minus = dict(zip(speakers, mix_minus(talk), strict=True))
            mixed = mix(talk)
            heard = [minus.get(i, mixed) for i in range(len(frames))]
        for leg, out in zip(plan.legs, heard, strict=True):
            leg.endpoint.push(self._music(leg) if leg.held else out, index)
        if self._taps:
            self._feed_taps(mixed, dict(zip(plan.roles, frames, strict=False)))  # same length

    def tick_failed(self, error: Exception) -> None:
        self.error = error

    def _music(self, leg: _Leg) -> bytes:
        music = self.hold_music
        if music is None:
            return SILENCE_FRAME
        pos = leg.music_pos if leg.music_pos < len(music.pcm) else 0
        leg.music_pos = pos + FRAME_BYTES
        return music.pcm[pos : pos + FRAME_BYTES]

    def _feed_taps(self, mixed: bytes, tracks: Mapping[str, bytes]) -> None:
        for tap in self._taps:
            try:
                tap.write(mixed, tracks)
            except Exception:
                log.exception("%s: recording tap %r failed; detached", self.name, tap)
                self._taps.remove(tap)
                self.failed_taps.append(tap)
