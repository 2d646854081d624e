"""The runner: executes a flow's commands against the SIP user agent, the media engine and a
recorder, and feeds what happens back to the flow as events.

One runner per flow, all on the service's event loop. Events (from legs, timers, prompts, digits
and API requests) go through one queue and are handled one at a time, in order; the commands a
flow returns are executed in order before the next event is taken. The runner owns every task,
timer, endpoint and recording it starts and releases them all when the flow is over, also when
it is cancelled (service shutdown) or a command fails.

Its parts: what it keeps and does per leg (calls/runner_legs.py), and its media side:
conferences, prompts and the recording (calls/runner_media.py).

See docs/callflows.md ("The runner contract").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from callflows import commands as c
from callflows.errors import EventError
from callflows.events import DigitsSent, Event, LegAnswered, LegEnded, PlaybackFinished, TimerFired
from calls import log_context
from calls.media_workers.surface import Media, MediaEndpoint
from calls.runner_hooks import NullHooks, RunnerHooks
from calls.runner_legs import LegBinding, LegWatch, hangup, release, send_digits, silent_legs
from calls.runner_media import FlowMedia
from recordings import RecordingFlusher
from recordings.errors import RecordingError
from storage.base import utcnow
from telephony.media.errors import MediaError
from telephony.privacy import mask_number
from telephony.sip import leg as sipleg
from telephony.sip.errors import SipError
from telephony.sip.ua import UserAgent

log = logging.getLogger(__name__)

DIAL_MARGIN_S = 5.0  # the UA's own ring timeout backs up the flow's ring timer
SETTLE_S = 10.0  # after the flow finished: how long to wait for the legs' final echoes
MEDIA_CHECK_S = 1.0  # how often answered legs are checked for incoming RTP
HANGUP_WAIT_S = 5.0  # as the runner ends: how long one leg's BYE/CANCEL may take to go out
CANCEL_WAIT_S = 2.0  # at a hand-over: how long a ringing leg's CANCEL may take to end its INVITE


@dataclass(frozen=True)
class _Replace:
    """A queued hand-over to another flow."""

    make: Callable[[c.Flow], c.Flow]


class FlowRunner:
    """Runs one flow to its end on the real stack."""

    def __init__(
        self,
        flow: c.Flow,
        *,
        ua: UserAgent,
        media: Media,
        hooks: RunnerHooks | None = None,
        prompts: Mapping[str, Path] | None = None,
        recordings_root: Path | None = None,
        recording_id: str | None = None,
        flusher: RecordingFlusher | None = None,
        record_solo: bool = False,
        media_timeout_s: float | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.flow = flow
        self.ua = ua
        self.media = media
        self.hooks: RunnerHooks = hooks or NullHooks()
        self.recording_id = recording_id or flow.flow_id
        self.mixing = FlowMedia(
            media, self.hooks, lambda: self.flow.flow_id, prompts=prompts,
            recordings_root=recordings_root, recording_id=self.recording_id, flusher=flusher,
        )  # fmt: skip
        self.record_solo = record_solo  # a one-leg flow (IVR): record the leg once answered
        # a leg whose peer vanished without a BYE (no RTP for this long) is ended "media_timeout"
        self.media_timeout_s = media_timeout_s
        self.clock = clock
        self._queue: asyncio.Queue[tuple[Event | _Replace, asyncio.Future[None] | None]] = (
            asyncio.Queue()
        )
        self._legs: dict[str, LegBinding] = {}
        self.watch = LegWatch(ua, self.hooks, self._put, answered=self._answered,
                              end_leg=self._end_leg)  # fmt: skip
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._done = asyncio.Event()
        self._handing_over = False
        self.cut_at_hand_over: list[str] = []  # roles rung until the hand-over, then CANCELled

    # -- public --
    def adopt(self, leg_id: str, role: str, sip: sipleg.Leg) -> None:
        """Hand the runner an existing SIP leg (an inbound call) under the flow's leg id."""
        binding = self._legs.setdefault(leg_id, LegBinding(leg_id, role))
        binding.sip = sip
        self.hooks.on_leg(leg_id, role, sip.call_id)
        self._watch_leg(binding, sip)

    def adopt_answered(
        self, leg_id: str, role: str, sip: sipleg.Leg, endpoint: MediaEndpoint
    ) -> None:
        """Hand the runner a SIP leg already answered on `endpoint` (a call carried on after a
        crash: the leg's dialog was re-INVITEd onto this endpoint)."""
        binding = self._legs.setdefault(leg_id, LegBinding(leg_id, role))
        binding.sip, binding.endpoint = sip, endpoint
        self._watch_digits(binding)
        self.hooks.on_leg(leg_id, role, sip.call_id)
        self.watch.mark_answered(binding)
        self._watch_leg(binding, sip)

    async def request(self, event: Event, timeout: float = 10.0) -> None:
        """Feed an API request; the flow's EventError (if any) is raised here."""
        if self._done.is_set():
            raise RuntimeError("flow is over")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, fut))
        async with asyncio.timeout(timeout):
            await fut

    async def replace_flow(self, make: Callable[[c.Flow], c.Flow], timeout: float = 10.0) -> None:
        """Hand the legs over to another flow, in event order (an inbound call becoming a
        bridge): `make(old_flow)` builds it; its start commands run at once."""
        if self._done.is_set():
            raise RuntimeError("flow is over")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((_Replace(make), fut))
        async with asyncio.timeout(timeout):
            await fut

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    async def wait(self) -> None:
        await self._done.wait()

    def connected_roles(self) -> list[str]:
        """Roles of the legs answered and not yet ended (one entry per leg)."""
        return [b.role for b in list(self._legs.values()) if b.answered and not b.ended]

    async def run(self) -> None:
        """Start the flow and run it until it is over and every leg has settled."""
        watchdog = (
            self._spawn(self._watch_media(), f"media-watch-{self.flow.flow_id}")
            if self.media_timeout_s
            else None
        )
        try:
            await self._execute(self.flow.start(self.clock()))
            while not (self.flow.finished and self._all_legs_ended()):
                timeout = SETTLE_S if self.flow.finished else None
                try:
                    async with asyncio.timeout(timeout):
                        event, fut = await self._queue.get()
                except TimeoutError:
                    log.warning(
                        "flow %s: legs did not settle in %.0f s", self.flow.flow_id, SETTLE_S
                    )
                    break
                await self._handle(event, fut)
        finally:
            if watchdog is not None:
                watchdog.cancel()
            await self._cleanup()
            self._done.set()

    # -- events --
    def _put(self, event: Event) -> None:
        self._queue.put_nowait((event, None))

    async def _handle(self, event: Event | _Replace, fut: asyncio.Future[None] | None) -> None:
        if isinstance(event, _Replace):
            try:
                self.flow = event.make(self.flow)
            except EventError as exc:
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
                return
            await self._execute(self.flow.start(self.clock()))
            if fut is not None and not fut.done():
                fut.set_result(None)
            return
        try:
            cmds = self.flow.handle(event, self.clock())
        except EventError as exc:
            if fut is not None and not fut.done():
                fut.set_exception(exc)
            else:
                # the request's name only: its fields may be dial lists (phone numbers)
                log.error("flow %s rejected %s: %s", self.flow.flow_id, type(event).__name__, exc)
            return
        await self._execute(cmds)
        if fut is not None and not fut.done():  # the requester sees the state after its effect
            fut.set_result(None)

    def _all_legs_ended(self) -> bool:
        return all(b.ended or b.sip is None for b in self._legs.values())

    # -- commands --
    async def _execute(self, cmds: list[c.Command]) -> None:
        for cmd in cmds:
            try:
                await self._run_command(cmd)
            except (SipError, MediaError, OSError, ValueError, RecordingError) as exc:
                log.error("flow %s: %s failed: %s", self.flow.flow_id, type(cmd).__name__, exc)
                leg_id = getattr(cmd, "leg_id", None)
                if leg_id is not None and isinstance(cmd, c.Dial | c.Answer):
                    self._put(LegEnded(leg_id, "failed", None))
                elif isinstance(cmd, c.Play):
                    # nothing was played (no prompt file, no media): a flow waiting for the
                    # prompt's end goes on to its key timer instead of waiting for ever
                    self._put(PlaybackFinished(cmd.leg_id, cmd.prompt_key))

    async def _run_command(self, cmd: c.Command) -> None:
        leg_id = getattr(cmd, "leg_id", None)
        token = log_context.leg.set(leg_id) if isinstance(leg_id, str) else None
        try:
            await self._dispatch(cmd)
        finally:
            if token is not None:
                log_context.leg.reset(token)

    async def _dispatch(self, cmd: c.Command) -> None:
        match cmd:
            case c.Dial():
                await self._dial(cmd)
            case c.Answer(leg_id=leg_id):
                await self._answer(leg_id)
            case c.Reject(leg_id=leg_id, sip_status=status):
                binding = self._legs.get(leg_id)
                if binding is not None and binding.sip is not None and not binding.sip.ended:
                    await binding.sip.reject(status)
            case c.CancelDial(leg_id=leg_id) | c.Hangup(leg_id=leg_id):
                # CANCEL/BYE complete in the background: their end comes back as LegEnded,
                # and a peer slow to confirm must not hold up the flow's next commands.
                binding = self._legs.get(leg_id)
                if binding is not None and binding.sip is not None and not binding.sip.ended:
                    self._hangup_in_background(binding, binding.sip)
            case c.Join(leg_id=leg_id, conference_id=conf_id):
                self._join(leg_id, conf_id)
            case c.Mute(leg_id=leg_id) | c.Unmute(leg_id=leg_id):
                mute = isinstance(cmd, c.Mute)
                self.mixing.mix(self._legs.get(leg_id), leg_id, lambda f, e: f.mute(e, mute))
            case c.Hold(leg_id=leg_id) | c.Unhold(leg_id=leg_id):
                hold = isinstance(cmd, c.Hold)
                self.mixing.mix(self._legs.get(leg_id), leg_id, lambda f, e: f.hold(e, hold))
            case c.Play():
                self._play(cmd)
            case c.SendDigits(leg_id=leg_id, digits=digits):
                binding = self._legs[leg_id]
                task = self._spawn(self._send_digits(binding, digits), f"ext-{leg_id}")
                binding.tasks.append(task)
            case c.StopPlayback(leg_id=leg_id):
                self.mixing.stop_playback(self._legs.get(leg_id))
            case c.StartTimer(timer_id=tid, seconds=secs):
                self._cancel_timer(tid)
                loop = asyncio.get_running_loop()
                self._timers[tid] = loop.call_later(secs, self._fire, tid)
            case c.CancelTimer(timer_id=tid):
                self._cancel_timer(tid)
            case c.StartRecording(conference_id=conf_id):
                self.mixing.start_recording(conf_id)
            case c.StopRecording():
                await self.mixing.stop_recording()
            case c.Save(snapshot=snapshot):
                self.hooks.on_save(snapshot)
            case c.Notify():
                self.hooks.on_notify(cmd)

    async def _dial(self, cmd: c.Dial) -> None:
        # a dispatcher seat rung for an inbound call is the dispatcher's track in recordings
        binding = LegBinding(cmd.leg_id, "dispatcher" if cmd.role == "seat" else cmd.role)
        self._legs[cmd.leg_id] = binding
        binding.endpoint = await self.media.open_endpoint(f"{self.flow.flow_id}:{cmd.leg_id}")
        self._watch_digits(binding)
        sip = await self.ua.dial(
            cmd.number,
            local_media=(self.media.host, binding.endpoint.local_port),
            ring_timeout=cmd.ring_timeout_s + DIAL_MARGIN_S,
        )
        binding.sip = sip
        log.info(
            "flow %s: dialling %s as %s", self.flow.flow_id, mask_number(cmd.number), cmd.leg_id
        )
        self.hooks.on_leg(cmd.leg_id, cmd.role, sip.call_id)
        self._watch_leg(binding, sip)

    async def _answer(self, leg_id: str) -> None:
        binding = self._legs[leg_id]
        if binding.sip is None:
            raise ValueError(f"leg {leg_id} has no SIP call to answer")
        if binding.endpoint is None:
            binding.endpoint = await self.media.open_endpoint(f"{self.flow.flow_id}:{leg_id}")
            self._watch_digits(binding)
        await binding.sip.answer((self.media.host, binding.endpoint.local_port))
        if binding.sip.media is not None:
            binding.endpoint.configure(binding.sip.media)
        self.watch.mark_answered(binding)

    async def _send_digits(self, binding: LegBinding, digits: str) -> None:
        """Key in an extension, then `DigitsSent` (ok False when a digit could not be sent)."""
        ok = await send_digits(binding, digits, self.flow.flow_id)
        self._put(DigitsSent(binding.leg_id, ok))

    def _hangup_in_background(self, binding: LegBinding, sip: sipleg.Leg) -> None:
        task = self._spawn(hangup(sip, self.flow.flow_id), f"hangup-{binding.leg_id}")
        binding.tasks.append(task)

    def _join(self, leg_id: str, conf_id: str) -> None:
        self.mixing.join(self._legs[leg_id], conf_id, list(self._legs.values()))

    def _play(self, cmd: c.Play) -> None:
        binding = self._legs.get(cmd.leg_id)
        done = PlaybackFinished(cmd.leg_id, cmd.prompt_key)
        waiting = self.mixing.play(binding, cmd, lambda: self._put(done))
        assert binding is not None  # play raised otherwise
        binding.tasks.append(self._spawn(waiting, f"play-{cmd.leg_id}"))

    def _fire(self, timer_id: str) -> None:
        self._timers.pop(timer_id, None)
        self._put(TimerFired(timer_id))

    def _cancel_timer(self, timer_id: str) -> None:
        handle = self._timers.pop(timer_id, None)
        if handle is not None:
            handle.cancel()

    # -- watchers --
    def _spawn(self, coro: object, name: str) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]

    def _watch_digits(self, binding: LegBinding) -> None:
        binding.tasks.append(self._spawn(self.watch.digits(binding), f"dtmf-{binding.leg_id}"))

    def _watch_leg(self, binding: LegBinding, sip: sipleg.Leg) -> None:
        binding.tasks.append(self._spawn(self.watch.leg(binding, sip), f"leg-{binding.leg_id}"))

    def _answered(self, binding: LegBinding) -> None:
        """A leg was answered: a one-leg flow (IVR) records it; then the flow learns of it."""
        if self.record_solo and binding.conference is None:
            self._join(binding.leg_id, "solo")
            self.mixing.start_recording("solo")  # a failure to start is stored, not raised
        self._put(LegAnswered(binding.leg_id))

    async def _watch_media(self) -> None:
        """End answered legs that stopped sending RTP (a phone gone without a BYE)."""
        assert self.media_timeout_s is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(MEDIA_CHECK_S)
            now = loop.time()
            for b in silent_legs(list(self._legs.values()), now, self.media_timeout_s):
                log.warning("flow %s: no RTP from %s for %.0f s: ending it",
                            self.flow.flow_id, b.leg_id, now - b.last_rx_at)  # fmt: skip
                self._end_leg(b, "media_timeout")

    def _end_leg(self, b: LegBinding, reason: str) -> None:
        """End a leg from the media side (the flow learns `reason`; BYE/CANCEL follows)."""
        if b.ended:
            return
        b.ended = True
        self._put(LegEnded(b.leg_id, reason, None))
        if b.sip is not None and not b.sip.ended:
            self._hangup_in_background(b, b.sip)

    async def _end_at_cleanup(self, binding: LegBinding, sip: sipleg.Leg) -> None:
        """BYE or CANCEL one leg as the runner ends (bounded: HANGUP_WAIT_S)."""
        with contextlib.suppress(SipError, TimeoutError):
            async with asyncio.timeout(HANGUP_WAIT_S):
                await sip.hangup()
        if self._handing_over and await sip.wait_ended(CANCEL_WAIT_S):
            # the INVITE is over (CANCEL answered): nothing left for the next start to CANCEL;
            # the leg is stored ended at the stop (calls/shutdown.py)
            self.hooks.on_dialog(binding.leg_id, binding.role, {})
            self.cut_at_hand_over.append(binding.role)

    def hand_over(self) -> None:
        """At a planned stop: when this runner is cancelled, leave its answered parties in their
        SIP dialogs for the next process to carry on (no BYE); a leg still ringing is cancelled
        as usual. The recording is sealed as at any end."""
        self._handing_over = True

    async def _cleanup(self) -> None:
        for tid in list(self._timers):
            self._cancel_timer(tid)
        ending = []
        for binding in self._legs.values():
            if binding.sip is not None and self._handing_over and binding.answered:
                if not binding.sip.ended:
                    self.ua.hand_over(binding.sip)
                continue
            if binding.sip is not None and not binding.sip.ended:
                ending.append(self._end_at_cleanup(binding, binding.sip))
        # at once: silent peers cost one bound, not one each; one leg's unexpected error must
        # not keep the recording from being sealed below
        for outcome in await asyncio.gather(*ending, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.error("flow %s: hanging up a leg failed: %r", self.flow.flow_id, outcome)
        await self.mixing.stop_recording()
        current = asyncio.current_task()
        for binding in self._legs.values():
            for task in binding.tasks:
                if task is not current:
                    task.cancel()
            for task in binding.tasks:
                if task is not current:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await release(binding)
