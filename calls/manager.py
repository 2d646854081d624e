"""The call manager: creates bridged calls, runs their flows, keeps the call records and the
event stream in step, and recovers what a crash left behind. A component of the service.

It is given the values it needs (`CallSettings`), the SIP user agent and media engine, a session
factory and a `publish` callable; it reads no settings. Database writes go through the call
records' writer thread, in order, so neither the event loop (where the 20 ms media tick runs)
nor a flow ever waits on SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from callflows import commands as c
from callflows.bridge import BridgeFlow, BridgeSettings
from callflows.destination import Destination, as_destination
from callflows.events import AddUnit, Event, Role
from callflows.inbound import InboundFlow, InboundSettings, InboundState
from callflows.ivr import KeyPromptCall, KeyPromptResult
from calls import log_context
from calls import records as call_store
from calls.component import Health
from calls.hooks import BridgeHooks, CallHooks, InboundHooks, IvrHooks, Publish
from calls.media_workers.surface import Media
from calls.prompts import PromptError, ensure_prompts
from calls.records import CallRecords
from calls.restart import take_over_left_calls
from calls.runner import FlowRunner
from calls.shutdown import (
    CANCELLED,
    RUNNER_FAILED,
    SHUTDOWN,
    end_cut_call,
    end_legs_cut,
    hand_over,
)
from calls.stats import CallStats
from recordings import RecordingFlusher, RecordingWriter
from recordings.errors import RecordingError, RecordingWriteError
from registry.numbers import DialPolicy
from storage.base import utcnow
from storage.models.call_records import Call, CallKind
from telephony.privacy import mask_number
from telephony.sip import leg as sipleg
from telephony.sip.ua import UserAgent

log = logging.getLogger(__name__)
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class CallSettings:
    """What the call manager needs from the service's configuration."""

    node: str
    recordings_root: Path
    data_dir: Path  # prompts live under it
    dial_policy: DialPolicy
    bridge: BridgeSettings
    dispatcher_seats: tuple[str, ...] = ()
    inbound_ring_deadline_s: float = 30.0
    media_timeout_s: float | None = 30.0
    # after a crash: re-INVITE the parties and carry the calls on (calls/resume.py), each
    # re-INVITE bounded by `recover_timeout_s`; False: hang them up (BYE)
    recover_calls: bool = True
    recover_timeout_s: float = 4.0


class CallNotActive(LookupError):
    """The call is not (or no longer) carried by this process."""


@dataclass(frozen=True, slots=True)
class BridgeRequest:
    """A validated request for a three-way call: dial lists per role (already policy-checked;
    an entry with an extension is a `Destination`)."""

    dial_lists: dict[Role, list[str | Destination]]
    created_by: str
    labels: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    incident_id: str | None = None
    unit_code: str | None = None
    request: dict[str, Any] = field(default_factory=dict)


def _parties(req: BridgeRequest) -> tuple[tuple[str, str | None], ...]:
    """A new bridge's leg rows: (role, first number to dial)."""
    return tuple(
        (r.value, as_destination(nums[0]).number if nums else None)
        for r, nums in req.dial_lists.items()
    )


class CallManager:
    """Owns every flow runner of this process."""

    name = "calls"

    def __init__(
        self,
        settings: CallSettings,
        *,
        ua: UserAgent,
        media: Media,
        session_factory: sessionmaker[Session],
        publish: Publish,
    ) -> None:
        self.settings = settings
        self.ua = ua
        self.media = media
        self.publish = publish
        self.node = settings.node
        self.recordings_root = settings.recordings_root.resolve()
        self.records = CallRecords(session_factory, self.recordings_root)
        self.runners: dict[str, FlowRunner] = {}
        self.stats = CallStats()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.flusher = RecordingFlusher(self._on_write_error)
        self._recovered: list[str] = []
        self._orphan_task: asyncio.Task[None] | None = None
        self._write_errors = 0
        self.prompts: dict[str, Path] = {}
        self._inbound_task: asyncio.Task[None] | None = None
        self._prompt_problem: str | None = None
        self._stopping = False
        self._handed_over: set[str] = set()

    # -- component --
    async def start(self) -> None:
        self.recordings_root.mkdir(parents=True, exist_ok=True)
        recovered, self._orphan_task = await take_over_left_calls(self)
        self._recovered = recovered
        self.flusher.start()
        self._inbound_task = asyncio.create_task(self._accept_inbound(), name="inbound-calls")
        try:
            self.prompts = await asyncio.to_thread(ensure_prompts, self.settings.data_dir)
        except PromptError as exc:
            self._prompt_problem = f"prompts unavailable: {exc}"
            log.error("IVR %s", self._prompt_problem)

    def begin_stop(self) -> None:
        """The service is stopping: a call cut from now on is stored ended `shutdown`."""
        self._stopping = True

    async def stop(self) -> None:
        if self._orphan_task is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._orphan_task), STOP_TIMEOUT_S)
        if self._inbound_task is not None:
            self._inbound_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._inbound_task
        self._stopping = True
        if self.settings.recover_calls:  # the next start carries them on (calls/shutdown.py)
            self._handed_over = hand_over(self.runners, self.records, self.node)
        for task in self._tasks.values():
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=STOP_TIMEOUT_S)
        await self.flusher.stop()
        await self.records.close(STOP_TIMEOUT_S)

    def health(self) -> Health:
        detail = f"{len(self.runners)} active call(s)"
        if self._write_errors:
            return Health(False, f"{detail}; {self._write_errors} recording write error(s)")
        if self._prompt_problem is not None:  # no survey, duty check or unit confirmation works
            return Health(False, f"{detail}; IVR {self._prompt_problem}")
        return Health(True, detail)

    def active(self) -> tuple[dict[str, int], dict[str, int]]:
        """Calls carried now by kind, and their connected legs by role (read by the metrics
        exposition from its own thread: it copies before it iterates)."""
        calls: dict[str, int] = {}
        legs: dict[str, int] = {}
        for runner in list(self.runners.values()):
            if runner.finished:
                continue
            kind = str(getattr(runner.hooks, "kind", "call"))
            calls[kind] = calls.get(kind, 0) + 1
            for role in runner.connected_roles():
                legs[role] = legs.get(role, 0) + 1
        return calls, legs

    async def flushed(self) -> None:
        """Wait until every queued call record write is done (tests, shutdown)."""
        await self.records.flushed()

    # -- bridges --
    def store_bridge(self, req: BridgeRequest, s: Session) -> tuple[Call, bool]:
        """Add a new bridge to the session `s` (in the caller's thread, not the event loop; the
        caller commits, so its audit entry is in the same transaction); returns (call,
        created). A known Idempotency-Key returns the existing bridge and adds nothing; a
        concurrent request that stored the same key first makes this one's flush raise
        IntegrityError (the caller rolls back and asks again)."""
        if req.idempotency_key:
            existing = call_store.call_by_idempotency_key(s, req.idempotency_key)
            if existing is not None:
                return existing, False
        new = call_store.NewCall(
            kind=CallKind.BRIDGE,
            created_by=req.created_by,
            node=self.node,
            idempotency_key=req.idempotency_key,
            incident_id=req.incident_id,
            unit_code=req.unit_code,
            request=req.request,
            parties=_parties(req),
        )
        return call_store.add_call(s, new), True

    async def start_bridge(self, call_id: str, req: BridgeRequest) -> None:
        """Run a bridge `store_bridge` stored (committed): dialling starts now."""
        self.records.rows.seed(call_id, CallKind.BRIDGE, _parties(req))  # its writes read nothing
        flow = BridgeFlow(call_id, dict(req.dial_lists), utcnow(), self.settings.bridge)
        self._start_runner(
            call_id,
            flow,
            BridgeHooks(self.records, self.publish, call_id, req.labels, stats=self.stats),
        )

    def _start_runner(
        self, call_id: str, flow: c.Flow, hooks: CallHooks, *, solo: bool = False
    ) -> asyncio.Task[None]:
        return self.launch(call_id, self.make_runner(call_id, flow, hooks, solo=solo))

    def make_runner(
        self,
        call_id: str,
        flow: c.Flow,
        hooks: CallHooks,
        *,
        solo: bool = False,
        recording_id: str | None = None,
    ) -> FlowRunner:
        """A runner for `flow` on this node's stack (not started: `launch`)."""
        return FlowRunner(
            flow,
            ua=self.ua,
            media=self.media,
            hooks=hooks,
            prompts=self.prompts,
            recordings_root=self.recordings_root,
            recording_id=recording_id or call_id,
            flusher=self.flusher,
            record_solo=solo,
            media_timeout_s=self.settings.media_timeout_s or None,
        )

    def launch(self, call_id: str, runner: FlowRunner) -> asyncio.Task[None]:
        """Run `runner` as this call's task (kept until it ends)."""
        self.runners[call_id] = runner
        task = asyncio.get_running_loop().create_task(
            self._run(call_id, runner), name=f"call-{call_id}"
        )
        self._tasks[call_id] = task
        return task

    async def _run(self, call_id: str, runner: FlowRunner) -> None:
        log_context.call_id.set(call_id)  # this task's context: its records carry the call
        try:
            await runner.run()
        except asyncio.CancelledError:
            if call_id not in self._handed_over and not runner.flow.finished:
                reason = SHUTDOWN if self._stopping else CANCELLED
                self.records.queue_write(partial(end_cut_call, reason=reason), call_id, utcnow(),
                                         what=f"ended ({reason})")  # fmt: skip
            elif call_id in self._handed_over and runner.cut_at_hand_over:
                cut = tuple(runner.cut_at_hand_over)
                self.records.queue_write(partial(end_legs_cut, roles=cut), call_id, utcnow(),
                                         what="legs cut at the stop")  # fmt: skip
            raise
        except Exception:
            log.exception("call %s: runner failed", call_id)
            if not runner.flow.finished:  # else its row would stay open, with no reason
                self.records.queue_write(partial(end_cut_call, reason=RUNNER_FAILED), call_id,
                                         utcnow(), what=f"ended ({RUNNER_FAILED})")  # fmt: skip
        finally:
            self.runners.pop(call_id, None)
            self._tasks.pop(call_id, None)

    # -- inbound calls --
    async def _accept_inbound(self) -> None:
        """Every call to the service rings the dispatcher seats at once (first to answer)."""
        while True:
            leg = await self.ua.incoming.get()
            try:
                await self._inbound(leg)
            except Exception:
                log.exception("inbound call %s could not be handled", leg.call_id[:8])
                with contextlib.suppress(Exception):
                    await leg.reject(500)

    async def _inbound(self, leg: sipleg.Leg) -> None:
        seats = list(self.settings.dispatcher_seats)
        if not seats:
            log.warning(
                "inbound call from %s refused: no LINKCALL_DISPATCHER_SEATS",
                mask_number(leg.remote_number),
            )
            await leg.reject(480)
            return
        await leg.ring()
        new = call_store.NewCall(
            kind=CallKind.INBOUND,
            created_by="inbound",
            node=self.node,
            parties=(("caller", leg.remote_number), ("dispatcher", None)),
        )
        call_id = await self.records.insert(new)
        settings = InboundSettings(ring_deadline_s=self.settings.inbound_ring_deadline_s)
        flow = InboundFlow(call_id, "caller", leg.remote_number, seats, settings)
        runner = self.make_runner(
            call_id, flow, InboundHooks(self.records, self.publish, call_id, stats=self.stats)
        )
        runner.adopt("caller", "caller", leg)
        self.launch(call_id, runner)

    async def add_unit(
        self,
        call_id: str,
        numbers: list[str | Destination],
        labels: dict[str, str],
        unit_code: str | None,
    ) -> None:
        """Bring a unit into a connected inbound call: it becomes a three-way bridge."""
        runner = self.runners.get(call_id)
        if runner is None or runner.finished:
            raise CallNotActive(call_id)
        flow = runner.flow
        if not isinstance(flow, InboundFlow) or flow.state is not InboundState.CONNECTED:
            raise CallNotActive(call_id)
        hooks = runner.hooks
        if isinstance(hooks, BridgeHooks):
            hooks.labels.update(labels)
        first = as_destination(numbers[0]).number if numbers else None
        await self.records.become_bridge(call_id, unit_code, first)
        settings = self.settings.bridge
        await runner.replace_flow(lambda old: flow.to_bridge(utcnow(), call_id, settings))
        await runner.request(AddUnit(tuple(numbers)))

    # -- prompt-and-key calls (surveys, duty checks) --
    def dial_form(self, number: str) -> str:
        """What to dial for a stored number (E.164 or extension), after the dial policy;
        NumberError when the number is invalid or refused."""
        return self.settings.dial_policy.check(number).dial

    async def run_key_prompt(
        self,
        kind: CallKind,
        make_flow: Callable[[str], KeyPromptCall],
        number: str,
        *,
        created_by: str = "system",
        incident_id: str | None = None,
        unit_code: str | None = None,
    ) -> tuple[str, KeyPromptResult]:
        """Place one IVR call to `number` (already policy-checked) and wait for its result.

        `make_flow(call_id)` builds the flow; the call is stored and recorded like any other.
        Cancelled while waiting (shutdown, the caller's deadline), it ends the call (BYE or
        CANCEL, within `STOP_TIMEOUT_S`) before it raises: no IVR goes on unattended.
        """
        if self._prompt_problem is not None:
            raise RuntimeError(self._prompt_problem)
        new = call_store.NewCall(
            kind=kind,
            created_by=created_by,
            node=self.node,
            incident_id=incident_id,
            unit_code=unit_code,
            parties=(("callee", number),),
        )
        call_id = await self.records.insert(new)
        flow = make_flow(call_id)
        hooks = IvrHooks(self.records, self.publish, call_id, kind, stats=self.stats)
        task = self._start_runner(call_id, flow, hooks, solo=True)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
            raise
        await self.flushed()
        result = hooks.result or flow.result()
        return call_id, result

    async def request(
        self, call_id: str, event: Event, labels: dict[str, str] | None = None
    ) -> None:
        """Pass an API request to a running call (the flow's EventError comes back); `labels`
        name who answers the numbers of a unit being added or swapped in."""
        runner = self.runners.get(call_id)
        if runner is None or runner.finished:
            raise CallNotActive(call_id)
        if labels and isinstance(runner.hooks, BridgeHooks):
            runner.hooks.labels.update(labels)
        await runner.request(event)

    # -- recordings --
    def _on_write_error(self, writer: RecordingWriter, err: RecordingWriteError) -> None:
        self._write_errors += 1
        self.stats.recording_problems["write_error"] += 1
        log.error("recording %s: write failed: %s", writer.recording_id, err)
        self.publish("recording.error", {"recording_id": writer.recording_id, "error": str(err)})

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no call runs (tests)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(list(self._tasks.values()))
        with contextlib.suppress(RecordingError):
            await self.flushed()
