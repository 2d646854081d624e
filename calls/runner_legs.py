"""What the flow runner (calls/runner.py) keeps and does for one leg on the wire: the leg's
binding (its SIP leg, RTP endpoint and conference, the tasks watching it), what happens on it
turned into the flow's events (`LegWatch`), keying in an extension, hanging up, finding answered
legs whose RTP stopped, and releasing its media once it ended."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from callflows.events import DtmfReceived, Event, LegEnded, LegRinging
from calls import log_context
from calls.media_workers.surface import MediaConference, MediaEndpoint
from calls.runner_hooks import RunnerHooks
from telephony.media.errors import MediaError
from telephony.sip import leg as sipleg
from telephony.sip.errors import SipError
from telephony.sip.ua import UserAgent

# the runner's lines, wherever its parts live: operators follow a call by this logger
log = logging.getLogger("calls.runner")

DIGIT_MS = 160  # one extension digit on the wire (RFC 4733 event or INFO Duration)
DIGIT_GAP_S = 0.12  # between two extension digits


@dataclass
class LegBinding:
    """What one flow leg is on the wire."""

    leg_id: str
    role: str
    sip: sipleg.Leg | None = None
    endpoint: MediaEndpoint | None = None
    conference: MediaConference | None = None
    ended: bool = False
    released: bool = False
    answered: bool = False
    peer_held: bool = False  # the peer put us on hold (sendonly/inactive): silence is expected
    last_rx: int = 0
    last_rx_at: float = 0.0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def send_digits(binding: LegBinding, digits: str, flow_id: str) -> bool:
    """Key in an extension: RFC 4733 when the peer agreed to telephone-event, SIP INFO
    otherwise. False when a digit could not be sent."""
    sip, endpoint = binding.sip, binding.endpoint
    try:
        if sip is None or endpoint is None or sip.media is None:
            raise ValueError(f"leg {binding.leg_id} is not answered")
        rfc4733 = sip.media.dtmf_payload_type is not None
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(DIGIT_GAP_S)
            if rfc4733:
                await endpoint.send_dtmf(digit, DIGIT_MS)
            else:
                async with asyncio.timeout(10.0):
                    await sip.send_info_dtmf(digit)
        how = "RFC 4733" if rfc4733 else "SIP INFO"
        log.info("flow %s: extension sent on %s by %s", flow_id, binding.leg_id, how)
    except (SipError, MediaError, ValueError, TimeoutError) as exc:
        log.warning("flow %s: extension on %s failed: %s", flow_id, binding.leg_id, exc)
        return False
    return True


async def hangup(sip: sipleg.Leg, flow_id: str) -> None:
    """BYE (or CANCEL) the leg; a failure is logged (its end comes back as the leg's event)."""
    try:
        await sip.hangup()
    except SipError as exc:
        log.warning("flow %s: hangup of %s failed: %s", flow_id, sip.call_id[:8], exc)


def silent_legs(legs: Iterable[LegBinding], now: float, timeout_s: float) -> list[LegBinding]:
    """Answered legs, not on hold, that received no RTP for `timeout_s` up to `now` (the loop's
    time); the others' last packet count and time are brought up to date."""
    silent = []
    for b in legs:
        if not b.answered or b.ended or b.peer_held or b.endpoint is None or b.sip is None:
            continue
        received = b.endpoint.stats.packets_received
        if received != b.last_rx:
            b.last_rx, b.last_rx_at = received, now
        elif now - b.last_rx_at >= timeout_s:
            silent.append(b)
    return silent


async def release(binding: LegBinding) -> None:
    """Take an ended leg out of its conference and close its media (once)."""
    if binding.released:
        return
    binding.released = True
    if binding.conference is not None and binding.endpoint is not None:
        binding.conference.remove(binding.endpoint)
        binding.conference = None
    if binding.endpoint is not None:
        await binding.endpoint.close()


class LegWatch:
    """Feeds a flow what happens on its legs: SIP events, digits received, a lost media worker.

    `put` queues a flow event; `answered(binding)` runs when a leg is answered, before its
    `LegAnswered` is queued; `end_leg(binding, reason)` ends a leg from the media side. Dialogs
    go to the hooks as they change (persisted, so a crash leaves no orphan)."""

    def __init__(
        self,
        ua: UserAgent,
        hooks: RunnerHooks,
        put: Callable[[Event], None],
        *,
        answered: Callable[[LegBinding], None],
        end_leg: Callable[[LegBinding, str], None],
    ) -> None:
        self.ua = ua
        self.hooks = hooks
        self.put = put
        self.answered = answered
        self.end_leg = end_leg

    async def digits(self, binding: LegBinding) -> None:
        """Digits received on the leg's endpoint, until it closes."""
        endpoint = binding.endpoint
        assert endpoint is not None
        async for d in endpoint.digits:
            self.put(DtmfReceived(binding.leg_id, d.digit))
        if endpoint.lost:  # its media worker died: the leg cannot go on
            self.end_leg(binding, "media_lost")

    async def leg(self, binding: LegBinding, sip: sipleg.Leg) -> None:
        """The SIP leg's events until it ended."""
        log_context.leg.set(binding.leg_id)
        async for ev in sip:
            match ev:
                case sipleg.Ringing():
                    self.put(LegRinging(binding.leg_id))
                    pending = self.ua.pending_state(sip)
                    if pending is not None:  # a crash now leaves a phone ringing: CANCEL it
                        self.hooks.on_dialog(binding.leg_id, binding.role, pending)
                case sipleg.Answered(media=media):
                    if media is not None and binding.endpoint is not None:
                        binding.endpoint.configure(media)
                    self.mark_answered(binding)
                    self.answered(binding)
                case sipleg.MediaChanged(media=media, held=held):
                    self.report_dialog(binding)  # a re-INVITE may refresh the target
                    binding.peer_held = held
                    binding.last_rx_at = asyncio.get_running_loop().time()
                    if binding.endpoint is not None:
                        binding.endpoint.configure(media)
                case sipleg.Dtmf(digit=digit):
                    if binding.endpoint is not None:
                        binding.endpoint.inject_dtmf(digit)
                case sipleg.Ended(reason=reason, sip_status=status):
                    if not binding.answered and sip.direction == "outbound":
                        self.hooks.on_dialog(binding.leg_id, binding.role, {})  # nothing to CANCEL
                    binding.ended = True
                    await release(binding)
                    self.put(LegEnded(binding.leg_id, reason.value, status))
                    return

    def mark_answered(self, binding: LegBinding) -> None:
        """The leg is answered: its RTP silence is counted from now; its dialog is reported."""
        binding.answered = True
        binding.last_rx_at = asyncio.get_running_loop().time()
        self.report_dialog(binding)

    def report_dialog(self, binding: LegBinding) -> None:
        """Hand the leg's dialog to the hooks."""
        sip = binding.sip
        if sip is not None and sip.dialog is not None:
            self.hooks.on_dialog(binding.leg_id, binding.role, sip.dialog.to_state())
