"""A call leg as the rest of linkcall sees it: state, negotiated media, events, actions.

The user agent (ua.py) drives the leg; the leg keeps the state table, the event queue and the
waits. Actions (ring, answer, reject, hang up, send DTMF) are carried out by the UA through
the small `LegControl` protocol, so this module does no SIP itself.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from telephony.privacy import mask_number
from telephony.types import Direction, DtmfDigit, NegotiatedMedia

from .errors import LegError

if TYPE_CHECKING:
    from .dialog import Dialog

logger = logging.getLogger(__name__)


class LegState(enum.Enum):
    DIALING = "dialing"  # outbound: INVITE sent, nothing heard back yet (or 100 Trying)
    INCOMING = "incoming"  # inbound: INVITE received, not yet rung
    RINGING = "ringing"  # 180/183 received (outbound) or sent (inbound)
    ANSWERED = "answered"
    ENDED = "ended"


_LEGAL: dict[LegState, frozenset[LegState]] = {
    LegState.DIALING: frozenset({LegState.RINGING, LegState.ANSWERED, LegState.ENDED}),
    LegState.INCOMING: frozenset({LegState.RINGING, LegState.ANSWERED, LegState.ENDED}),
    LegState.RINGING: frozenset({LegState.ANSWERED, LegState.ENDED}),
    LegState.ANSWERED: frozenset({LegState.ENDED}),
    LegState.ENDED: frozenset(),
}


class EndReason(enum.Enum):
    """Why a leg ended; what callflows/ decide on (escalate, retry, record the outcome)."""

    NORMAL_LOCAL = "normal_local"  # we hung up an answered call
    NORMAL_REMOTE = "normal_remote"  # the peer sent BYE
    BUSY = "busy"  # 486 / 600
    DECLINED = "declined"  # 603
    NOT_FOUND = "not_found"  # 404 / 604 / 484 / 410
    UNREACHABLE = "unreachable"  # no response at all (timer B), transport error, 480/503
    TIMEOUT = "timeout"  # rang without answer until our ring timeout (we CANCELled) or 408
    CANCELLED = "cancelled"  # we cancelled (hangup before answer) / the caller cancelled
    AUTH_FAILED = "auth_failed"  # challenged again after we answered, or 403
    INCOMPATIBLE = "incompatible"  # 488 / 606 / no common codec
    REJECTED = "rejected"  # other 4xx, or we rejected an inbound call
    FAILED = "failed"  # 3xx / 5xx / protocol failure (no ACK for our 2xx...)


@dataclass(frozen=True, slots=True)
class Ringing:
    early_media: NegotiatedMedia | None = None


@dataclass(frozen=True, slots=True)
class Answered:
    media: NegotiatedMedia | None


@dataclass(frozen=True, slots=True)
class MediaChanged:
    """A re-INVITE changed the media: `held` when the peer stopped sending or receiving."""

    media: NegotiatedMedia
    held: bool


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: DtmfDigit


@dataclass(frozen=True, slots=True)
class Ended:
    reason: EndReason
    sip_status: int | None


LegEvent = Ringing | Answered | MediaChanged | Dtmf | Ended


class LegControl(Protocol):
    """What the UA does for a leg (implemented in ua.py)."""

    async def leg_ring(self, leg: Leg) -> None: ...
    async def leg_answer(self, leg: Leg, local_media: tuple[str, int]) -> None: ...
    async def leg_reject(self, leg: Leg, code: int) -> None: ...
    async def leg_hangup(self, leg: Leg) -> None: ...
    async def leg_send_info_dtmf(self, leg: Leg, digit: str) -> None: ...
    async def leg_reinvite(self, leg: Leg, direction: Direction) -> int | None: ...


@dataclass(eq=False)
class Leg:
    """One side of a call. Events arrive on `events`; `media` is set once answered."""

    call_id: str
    direction: Literal["outbound", "inbound"]
    remote_number: str
    _control: LegControl = field(repr=False)
    state: LegState = LegState.DIALING
    media: NegotiatedMedia | None = None
    end_reason: EndReason | None = None
    sip_status: int | None = None
    events: asyncio.Queue[LegEvent] = field(default_factory=asyncio.Queue, repr=False)
    dialog: Dialog | None = field(default=None, repr=False)
    _answered: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        if self.direction == "inbound":
            self.state = LegState.INCOMING

    # -- state (driven by the UA) --------------------------------------------------------------
    def _set_state(self, state: LegState) -> None:
        if state == self.state:
            return
        if state not in _LEGAL[self.state]:
            raise LegError(
                f"leg {self.state.value} -> {state.value} not allowed", call_id=self.call_id
            )
        logger.info(
            "leg %s %s %s - %s -> %s",
            self.call_id[:8],
            self.direction,
            mask_number(self.remote_number),
            self.state.value,
            state.value,
        )
        self.state = state

    def mark_ringing(self, early_media: NegotiatedMedia | None = None) -> None:
        if self.state in (LegState.DIALING, LegState.INCOMING):
            self._set_state(LegState.RINGING)
            self.events.put_nowait(Ringing(early_media))

    def mark_answered(self, media: NegotiatedMedia | None) -> None:
        if self.state in (LegState.DIALING, LegState.INCOMING, LegState.RINGING):
            self.media = media
            self._set_state(LegState.ANSWERED)
            self._answered.set()
            self.events.put_nowait(Answered(media))

    def mark_media(self, media: NegotiatedMedia) -> None:
        self.media = media
        held = media.direction != Direction.SENDRECV or media.remote_port == 0
        self.events.put_nowait(MediaChanged(media, held))

    def mark_dtmf(self, digit: DtmfDigit) -> None:
        self.events.put_nowait(Dtmf(digit))

    def mark_ended(self, reason: EndReason, sip_status: int | None = None) -> None:
        """End the leg once; later calls are ignored (the first reason wins)."""
        if self.state == LegState.ENDED:
            return
        self.end_reason = reason
        self.sip_status = sip_status
        self._set_state(LegState.ENDED)
        self._ended.set()
        self.events.put_nowait(Ended(reason, sip_status))

    @property
    def ended(self) -> bool:
        return self.state == LegState.ENDED

    # -- waits -----------------------------------------------------------------------------
    async def wait_answered(self, timeout: float) -> bool:
        """True once answered; False if the leg ended first or `timeout` passed."""
        waiters = [
            asyncio.ensure_future(self._answered.wait()),
            asyncio.ensure_future(self._ended.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        return self._answered.is_set()

    async def wait_ended(self, timeout: float) -> bool:
        """True once the leg has ended; False if `timeout` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._ended.wait()
        except TimeoutError:
            return False
        return True

    async def __aiter__(self) -> AsyncIterator[LegEvent]:
        """Iterate events until (and including) Ended."""
        while True:
            ev = await self.events.get()
            yield ev
            if isinstance(ev, Ended):
                return

    # -- actions -----------------------------------------------------------------------------
    async def ring(self) -> None:
        """Send 180 Ringing for an inbound leg."""
        self._require(LegState.INCOMING, inbound=True)
        await self._control.leg_ring(self)

    async def answer(self, local_media: tuple[str, int]) -> None:
        """Answer an inbound leg with our RTP address (host, port) in the SDP."""
        self._require(LegState.INCOMING, LegState.RINGING, inbound=True)
        await self._control.leg_answer(self, local_media)

    async def reject(self, code: int = 486) -> None:
        """Refuse an inbound leg with a 4xx/5xx/6xx status."""
        if not 400 <= code <= 699:
            raise ValueError(f"reject needs a 4xx-6xx status, not {code}")
        self._require(LegState.INCOMING, LegState.RINGING, inbound=True)
        await self._control.leg_reject(self, code)

    async def hangup(self) -> None:
        """End the leg: CANCEL before answer (outbound), BYE after; no-op once ended."""
        if self.state == LegState.ENDED:
            return
        await self._control.leg_hangup(self)

    async def send_info_dtmf(self, digit: str) -> None:
        """Send one DTMF digit as SIP INFO (application/dtmf-relay) in an answered call."""
        DtmfDigit(digit, "info", 0.0)  # validates the digit
        self._require(LegState.ANSWERED)
        await self._control.leg_send_info_dtmf(self, digit)

    async def hold(self) -> int | None:
        """Put the peer on hold (re-INVITE with sendonly); returns the SIP status or None."""
        self._require(LegState.ANSWERED)
        return await self._control.leg_reinvite(self, Direction.SENDONLY)

    async def resume(self) -> int | None:
        """Take the peer off hold (re-INVITE with sendrecv); returns the SIP status or None."""
        self._require(LegState.ANSWERED)
        return await self._control.leg_reinvite(self, Direction.SENDRECV)

    def _require(self, *states: LegState, inbound: bool = False) -> None:
        if inbound and self.direction != "inbound":
            raise LegError("only an inbound leg can do that", call_id=self.call_id)
        if self.state not in states:
            raise LegError(f"not allowed while {self.state.value}", call_id=self.call_id)
