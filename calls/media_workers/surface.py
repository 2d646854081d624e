"""The media engine's surface as the flow runner uses it, met by the in-process engine
(`telephony.media.MediaEngine`) and by the media workers (`RemoteMediaEngine`)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

from telephony.media.digits import DigitStream
from telephony.media.playback import PlaybackOutcome
from telephony.media.stats import LegStats
from telephony.types import DtmfDigit, NegotiatedMedia


class MediaEndpoint(Protocol):
    """One leg's RTP endpoint."""

    label: str
    lost: bool  # its media worker died (never true in process)
    digits: DigitStream

    @property
    def local_port(self) -> int: ...

    @property
    def stats(self) -> LegStats: ...

    def configure(self, media: NegotiatedMedia) -> None: ...

    def inject_dtmf(self, digit: DtmfDigit) -> None: ...

    async def send_dtmf(self, digit: str, duration_ms: int = 160) -> None: ...

    def play(
        self, prompt: str | os.PathLike[str], *, interrupt_on_dtmf: bool = True
    ) -> Awaitable[PlaybackOutcome]: ...

    def stop_playback(self) -> None: ...

    async def close(self) -> None: ...


class MediaConference(Protocol):
    """Legs mixed together (endpoints of the same engine)."""

    @property
    def roles(self) -> Mapping[str, Any]: ...

    def add(self, endpoint: Any, role: str) -> None: ...

    def remove(self, endpoint: Any) -> None: ...

    def mute(self, endpoint: Any, muted: bool = True) -> None: ...

    def hold(self, endpoint: Any, held: bool = True) -> None: ...

    def add_tap(self, tap: Any) -> None: ...

    def remove_tap(self, tap: Any) -> None: ...


class Media(Protocol):
    """Opens endpoints and conferences."""

    host: str

    async def open_endpoint(
        self, label: str, *, inband_dtmf: bool | None = None
    ) -> MediaEndpoint: ...

    def create_conference(self, name: str = ..., hold_music: Any = ...) -> MediaConference: ...
