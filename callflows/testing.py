"""An in-memory runner for whole-flow tests: executes commands against scripted phones.

`FakeRunner` plays the part of the real runner (SIP user agent, media engine, timers) on a
virtual clock: a `Dial` rings the `PeerScript` registered for the number, which answers,
fails or never answers after a while, presses keys and hangs up as scripted. Timers, prompts
and signalling delays run on the same clock, so a flow of minutes runs in microseconds and the
same flow code runs here and on the real stack. It also keeps the media-side facts a user
would observe: who is in which conference, muted, held, recorded, and so who hears whom.

Contract it implements (the real runner must too): the echo of our own `CancelDial` is
`LegEnded(cancelled, 487)`, of `Hangup` is `LegEnded(normal_local)`; a prompt cut short by
`StopPlayback` reports nothing; a cancelled timer never fires.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from callflows import commands as c
from callflows.errors import CallflowError
from callflows.events import (
    DigitsSent,
    DtmfReceived,
    Event,
    LegAnswered,
    LegEnded,
    LegRinging,
    PlaybackFinished,
    Request,
    TimerFired,
)

log = logging.getLogger(__name__)

ANSWER = "answer"
IGNORE = "ignore"  # rings until cancelled
DIGIT_S = 0.3  # one DTMF digit on the wire (160 ms) plus the gap before the next
_DEFAULT_STATUS = {"busy": 486, "declined": 603, "not_found": 404, "unreachable": 503}


@dataclass(frozen=True)
class PeerScript:
    """How a scripted phone behaves when called.

    `answer` is "answer", "ignore" (rings forever) or an end reason ("busy", "declined", ...)
    reported after `after_s` seconds. Once answered it presses `keys` ((seconds after answer,
    digit), ...) and hangs up after `hangup_after_s` seconds if set.
    """

    answer: str = ANSWER
    after_s: float = 1.0
    sip_status: int | None = None
    keys: tuple[tuple[float, str], ...] = ()
    hangup_after_s: float | None = None


@dataclass(order=True)
class _Item:
    at: datetime
    seq: int
    event: Event = field(compare=False)
    token: tuple[str, int] | None = field(compare=False, default=None)  # validity check
    leg_id: str | None = field(compare=False, default=None)  # dropped once the leg is gone


class FakeRunner:
    """Runs one flow (at a time) against scripted peers on a virtual clock."""

    def __init__(
        self,
        flow: c.Flow,
        peers: Mapping[str, PeerScript],
        start: datetime,
        *,
        existing_legs: Mapping[str, PeerScript] | None = None,
        prompt_seconds: Mapping[str, float] | None = None,
        default_prompt_s: float = 3.0,
        signal_delay_s: float = 0.05,
    ) -> None:
        self.flow = flow
        self.peers = dict(peers)
        self.start_time = self.now = start
        self.prompt_seconds = dict(prompt_seconds or {})
        self.default_prompt_s = default_prompt_s
        self.signal_delay = timedelta(seconds=signal_delay_s)
        self.commands: list[tuple[datetime, c.Command]] = []
        self.fed: list[tuple[datetime, Event]] = []
        self.errors: list[CallflowError] = []
        self.dialled: list[tuple[str, str]] = []  # (leg id, number)
        self.conferences: dict[str, set[str]] = {}
        self.muted: set[str] = set()
        self.held: set[str] = set()
        self.recording: set[str] = set()
        self.saves: list[object] = []
        self.notes: list[c.Notify] = []
        self.digits_sent: list[tuple[datetime, str, str]] = []  # (when out, leg id, digits)
        self.plays: list[tuple[datetime, str, str]] = []  # (when, leg id, prompt)
        self._heap: list[_Item] = []
        self._seq = itertools.count()
        self._scripts: dict[str, PeerScript] = {}
        self._alive: set[str] = set()  # legs not yet ended
        self._answered: set[str] = set()
        self._tokens: dict[str, int] = {}  # timer / playback generation
        for leg_id, script in (existing_legs or {}).items():
            self._scripts[leg_id] = script
            self._alive.add(leg_id)
            if script.hangup_after_s is not None:
                self._at(script.hangup_after_s, LegEnded(leg_id, "normal_remote"), leg=leg_id)

    # --- driving --------------------------------------------------------------------------------

    def begin(self) -> None:
        """Start the flow."""
        self.execute(self.flow.start(self.now))

    def replace_flow(self, flow: c.Flow) -> None:
        """Route further events to another flow (an inbound call handed over to a bridge)."""
        self.flow = flow
        self.execute(flow.start(self.now))

    def request(self, event: Request, at_s: float) -> None:
        """Schedule an API request `at_s` seconds after the runner's start."""
        self._push(self.start_time + timedelta(seconds=at_s), event)

    def run(self, until_s: float = 3600.0) -> None:
        """Deliver events in time order until none is left or `until_s` after the start."""
        limit = self.start_time + timedelta(seconds=until_s)
        while self._heap and self._heap[0].at <= limit:
            item = heapq.heappop(self._heap)
            if not self._valid(item):
                continue
            self.now = max(self.now, item.at)
            self._feed(item.event)

    def _feed(self, event: Event) -> None:
        self.fed.append((self.now, event))
        if isinstance(event, LegAnswered):
            self._on_peer_answered(event.leg_id)
        if isinstance(event, LegEnded):
            self._gone(event.leg_id)
        try:
            cmds = self.flow.handle(event, self.now)
        except CallflowError as exc:
            if not isinstance(event, Request):
                raise
            log.info("request %s refused: %s", event, exc)
            self.errors.append(exc)
            return
        self.execute(cmds)

    def _valid(self, item: _Item) -> bool:
        if item.token is not None and self._tokens.get(item.token[0]) != item.token[1]:
            return False
        return item.leg_id is None or item.leg_id in self._alive

    # --- what users observe -----------------------------------------------------------------

    def hears(self, leg_id: str) -> set[str]:
        """The legs whose audio reaches `leg_id` (same conference, neither held, not muted)."""
        if leg_id not in self._alive or leg_id in self.held:
            return set()
        for members in self.conferences.values():
            if leg_id in members:
                others = members - {leg_id}
                return {o for o in others if o in self._alive and o not in self.held | self.muted}
        return set()

    # --- executing commands -----------------------------------------------------------------

    def execute(self, cmds: list[c.Command]) -> None:
        """Carry out commands the way the real runner would, scheduling the resulting events."""
        for cmd in cmds:
            self.commands.append((self.now, cmd))
            self._execute_one(cmd)

    def _execute_one(self, cmd: c.Command) -> None:
        match cmd:
            case c.Dial(leg_id=leg, number=number):
                self._dial(leg, number)
            case c.CancelDial(leg_id=leg) if leg in self._alive and leg not in self._answered:
                self._end_soon(leg, "cancelled", 487)
            case c.Hangup(leg_id=leg) | c.Reject(leg_id=leg) if leg in self._alive:
                self._end_soon(leg, "normal_local", getattr(cmd, "sip_status", None))
            case c.Answer(leg_id=leg):
                self._answered.add(leg)
            case c.Join(leg_id=leg, conference_id=conf):
                for members in self.conferences.values():
                    members.discard(leg)
                self.conferences.setdefault(conf, set()).add(leg)
            case c.Mute(leg_id=leg) | c.Unmute(leg_id=leg):
                (self.muted.add if isinstance(cmd, c.Mute) else self.muted.discard)(leg)
            case c.Hold(leg_id=leg) | c.Unhold(leg_id=leg):
                (self.held.add if isinstance(cmd, c.Hold) else self.held.discard)(leg)
            case c.SendDigits(leg_id=leg, digits=digits) if leg in self._alive:
                seconds = DIGIT_S * len(digits)
                sent_at = self.now + timedelta(seconds=seconds)
                self.digits_sent.append((sent_at, leg, digits))
                self._at_rel(seconds, DigitsSent(leg, True), leg=leg)
            case c.Play(leg_id=leg, prompt_key=prompt):
                self.plays.append((self.now, leg, prompt))
                seconds = self.prompt_seconds.get(prompt, self.default_prompt_s)
                token = self._new_token(f"play:{leg}")
                self._at_rel(seconds, PlaybackFinished(leg, prompt), token=token, leg=leg)
            case c.StopPlayback(leg_id=leg):
                self._new_token(f"play:{leg}")
            case c.StartTimer(timer_id=timer_id, seconds=seconds):
                token = self._new_token(f"timer:{timer_id}")
                self._at_rel(seconds, TimerFired(timer_id), token=token)
            case c.CancelTimer(timer_id=timer_id):
                self._new_token(f"timer:{timer_id}")
            case c.StartRecording(conference_id=conf) | c.StopRecording(conference_id=conf):
                rec = self.recording
                (rec.add if isinstance(cmd, c.StartRecording) else rec.discard)(conf)
            case c.Save(snapshot=snapshot):
                self.saves.append(snapshot)
            case c.Notify():
                self.notes.append(cmd)

    def _dial(self, leg: str, number: str) -> None:
        self.dialled.append((leg, number))
        self._alive.add(leg)
        script = self.peers.get(number, PeerScript(answer="not_found", after_s=0.1))
        self._scripts[leg] = script
        self._at_rel(self.signal_delay.total_seconds(), LegRinging(leg), leg=leg)
        if script.answer == ANSWER:
            self._at_rel(script.after_s, LegAnswered(leg), leg=leg)
        elif script.answer != IGNORE:
            status = script.sip_status or _DEFAULT_STATUS.get(script.answer)
            self._at_rel(script.after_s, LegEnded(leg, script.answer, status), leg=leg)

    def _on_peer_answered(self, leg: str) -> None:
        self._answered.add(leg)
        script = self._scripts[leg]
        for offset, digit in script.keys:
            self._at_rel(offset, DtmfReceived(leg, digit), leg=leg)
        if script.hangup_after_s is not None:
            self._at_rel(script.hangup_after_s, LegEnded(leg, "normal_remote"), leg=leg)

    def _end_soon(self, leg: str, reason: str, status: int | None) -> None:
        self._gone(leg)
        self._at_rel(self.signal_delay.total_seconds(), LegEnded(leg, reason, status))

    def _gone(self, leg: str) -> None:
        self._alive.discard(leg)
        self.muted.discard(leg)
        self.held.discard(leg)
        self._new_token(f"play:{leg}")

    def _new_token(self, key: str) -> tuple[str, int]:
        self._tokens[key] = self._tokens.get(key, 0) + 1
        return (key, self._tokens[key])

    def _at_rel(
        self,
        seconds: float,
        event: Event,
        token: tuple[str, int] | None = None,
        leg: str | None = None,
    ) -> None:
        self._push(self.now + timedelta(seconds=seconds), event, token, leg)

    def _at(self, seconds: float, event: Event, leg: str | None = None) -> None:
        self._push(self.start_time + timedelta(seconds=seconds), event, None, leg)

    def _push(
        self,
        at: datetime,
        event: Event,
        token: tuple[str, int] | None = None,
        leg: str | None = None,
    ) -> None:
        heapq.heappush(self._heap, _Item(at, next(self._seq), event, token, leg))
