"""Call one number, play a prompt, collect one key: the machine under surveys and duty checks.

States and legal transitions (`KEY_PROMPT_TRANSITIONS`)::

    DIALING ──answer──▶ PROMPTING ──prompt ends──▶ COLLECTING ──valid key──▶ THANKING ──▶ DONE
    PROMPTING, COLLECTING ──invalid key / key timeout, repeats left──▶ PROMPTING (prompt again)
    PROMPTING, COLLECTING ──no repeats left / hang-up──▶ DONE (no_key)
    DIALING ──busy / declined / no answer / failure──▶ DONE

A key pressed while the prompt plays counts (the prompt is stopped). The prompt is played at
most `1 + max_repeats` times. Outcomes: answer, no_key, no_answer, busy, failed. Dial failures
map as `DIAL_OUTCOMES` says (busy and declined are "busy"; ring timeout, SIP timeout and
cancel are "no_answer"; anything else "failed"). `max_call_s` bounds the whole call.
Late events after DONE are ignored, except an answer on an abandoned leg, which is hung up.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from callflows import commands as c
from callflows.dialing import NO_ANSWER, Attempt, DialerStatus, LegIds, SequentialDialer
from callflows.errors import CallflowConfigError, IllegalTransitionError, UnknownLegError
from callflows.events import (
    DtmfReceived,
    Event,
    LegAnswered,
    LegEnded,
    PlaybackFinished,
    TimerFired,
)
from callflows.key_prompt import KeyPrompt, PromptPhase, PromptRules

log = logging.getLogger(__name__)

CALL_LIMIT_TIMER = "call-limit"


class CallOutcome(enum.StrEnum):
    """How one outbound prompt-and-key call went."""

    ANSWER = "answer"
    NO_KEY = "no_key"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"


DIAL_OUTCOMES: dict[str, CallOutcome] = {
    "busy": CallOutcome.BUSY,
    "declined": CallOutcome.BUSY,
    NO_ANSWER: CallOutcome.NO_ANSWER,
    "timeout": CallOutcome.NO_ANSWER,
    "cancelled": CallOutcome.NO_ANSWER,
}


class KeyPromptState(enum.Enum):
    """Where a prompt-and-key call is."""

    DIALING = "dialing"
    PROMPTING = "prompting"
    COLLECTING = "collecting"
    THANKING = "thanking"
    DONE = "done"


_S = KeyPromptState
KEY_PROMPT_TRANSITIONS: dict[KeyPromptState, frozenset[KeyPromptState]] = {
    _S.DIALING: frozenset({_S.PROMPTING, _S.DONE}),
    _S.PROMPTING: frozenset({_S.PROMPTING, _S.COLLECTING, _S.THANKING, _S.DONE}),
    _S.COLLECTING: frozenset({_S.PROMPTING, _S.THANKING, _S.DONE}),
    _S.THANKING: frozenset({_S.DONE}),
    _S.DONE: frozenset(),
}


@dataclass(frozen=True)
class KeyPromptSettings:
    """The prompts, the accepted keys (digit -> stored answer) and the timings."""

    prompt_key: str
    keys: Mapping[str, str] = field(default_factory=dict)
    thanks_key: str | None = None
    key_timeout_s: float = 8.0
    max_repeats: int = 2
    ring_timeout_s: float = 40.0
    max_call_s: float = 180.0

    def __post_init__(self) -> None:
        self.rules  # noqa: B018 - the prompt's own rules validate keys, repeats and timeouts
        if self.max_call_s <= 0:
            raise CallflowConfigError("the call limit must be positive")

    @property
    def rules(self) -> PromptRules:
        """The prompt-and-key part (`callflows.key_prompt`) of these settings."""
        return PromptRules(self.prompt_key, self.keys, self.key_timeout_s, self.max_repeats)


@dataclass(frozen=True, slots=True)
class KeyPromptResult:
    """What a prompt-and-key call stored: outcome, key, timing (None fields: not reached)."""

    flow_id: str
    number: str
    state: KeyPromptState
    outcome: CallOutcome | None
    key: str | None
    answer: str | None
    invalid_keys: tuple[str, ...]
    prompts_played: int
    attempt: Attempt | None
    answered_at: datetime | None
    key_at: datetime | None
    ended_at: datetime | None


class KeyPromptCall:
    """One outbound call that asks for one key. `start(now)`, then `handle(event, now)`."""

    def __init__(
        self, flow_id: str, number: str, settings: KeyPromptSettings, role: str = "callee"
    ):
        self._flow_id = flow_id
        self.number = number
        self.settings = settings
        self.state = KeyPromptState.DIALING
        self.dialer = SequentialDialer(role, [number], settings.ring_timeout_s, LegIds())
        self.leg_id: str | None = None
        self.outcome: CallOutcome | None = None
        self.prompt: KeyPrompt | None = None
        self.answered_at: datetime | None = None
        self.key_at: datetime | None = None
        self.ended_at: datetime | None = None

    @property
    def key(self) -> str | None:
        """The accepted key, once pressed."""
        return self.prompt.key if self.prompt is not None else None

    @property
    def invalid_keys(self) -> tuple[str, ...]:
        """Keys pressed that mean nothing here, in order."""
        return tuple(self.prompt.invalid_keys) if self.prompt is not None else ()

    @property
    def prompts_played(self) -> int:
        """How often the prompt started."""
        return self.prompt.prompts_played if self.prompt is not None else 0

    @property
    def flow_id(self) -> str:
        """The call's id."""
        return self._flow_id

    @property
    def finished(self) -> bool:
        """True once the outcome is known."""
        return self.state is KeyPromptState.DONE

    def _set_state(self, new: KeyPromptState) -> None:
        if new not in KEY_PROMPT_TRANSITIONS[self.state]:
            raise IllegalTransitionError(
                f"cannot go from {self.state.value} to {new.value}",
                flow_id=self._flow_id,
                state=self.state.value,
            )
        log.info("call %s - %s -> %s", self._flow_id, self.state.name, new.name)
        self.state = new

    def start(self, now: datetime) -> list[c.Command]:
        """Dial the number, with an overall call limit."""
        return [*self.dialer.start(now), c.StartTimer(CALL_LIMIT_TIMER, self.settings.max_call_s)]

    def handle(self, event: Event, now: datetime) -> list[c.Command]:
        """Feed one event; returns the commands to execute in order."""
        leg_id = getattr(event, "leg_id", None)
        if leg_id is not None and not self.dialer.owns(leg_id):
            raise UnknownLegError(f"unknown leg {leg_id!r}", flow_id=self._flow_id, party=leg_id)
        if self.finished:
            if isinstance(event, LegAnswered) and leg_id != self.leg_id:
                return self.dialer.late_answer(event.leg_id)
            return []
        match event:
            case LegAnswered(leg_id=leg):
                return self._on_answered(leg, now)
            case LegEnded(leg_id=leg, reason=reason, sip_status=status):
                return self._on_ended(leg, reason, status, now)
            case DtmfReceived(digit=digit) if self.state in (_S.PROMPTING, _S.COLLECTING):
                return self._on_key(digit, now)
            case PlaybackFinished(prompt=prompt):
                return self._on_playback_end(prompt, now)
            case TimerFired(timer_id=timer_id):
                return self._on_timer(timer_id, now)
        log.debug("call %s: ignoring %s in %s", self._flow_id, type(event).__name__, self.state)
        return []

    def _on_answered(self, leg: str, now: datetime) -> list[c.Command]:
        if self.state is not _S.DIALING or not self.dialer.is_ringing(leg):
            return [] if leg == self.leg_id else self.dialer.late_answer(leg)
        cmds = self.dialer.on_answered(leg, now)
        self.leg_id = leg
        self.answered_at = now
        self.prompt = KeyPrompt(self._flow_id, leg, self.settings.rules)
        cmds += self.prompt.start()
        self._set_state(_S.PROMPTING)
        return [*cmds, c.Save(self._flow_id, self.result())]  # answered: store it now

    def _on_ended(
        self, leg: str, reason: str, status: int | None, now: datetime
    ) -> list[c.Command]:
        if self.state is _S.DIALING:
            cmds = self.dialer.on_ended(leg, reason, status, now)
            return cmds + self._after_dial(now)
        if leg != self.leg_id:
            return []
        self.leg_id = None  # gone: nothing to hang up
        done = CallOutcome.ANSWER if self.key is not None else CallOutcome.NO_KEY
        return self._done(done, now)

    def _after_dial(self, now: datetime) -> list[c.Command]:
        if self.dialer.status is not DialerStatus.EXHAUSTED:
            return []
        result = self.dialer.attempts[-1].result or "failed"
        return self._done(DIAL_OUTCOMES.get(result, CallOutcome.FAILED), now)

    def _after_prompt(self, cmds: list[c.Command], now: datetime) -> list[c.Command]:
        """Follow the key prompt: thank for an accepted key, give up, or keep waiting."""
        assert self.prompt is not None and self.leg_id is not None
        match self.prompt.phase:
            case PromptPhase.ACCEPTED:
                self.key_at = now
                if self.settings.thanks_key is None:
                    return cmds + self._done(CallOutcome.ANSWER, now)
                self._set_state(_S.THANKING)
                return [*cmds, c.Play(self.leg_id, self.settings.thanks_key, False)]
            case PromptPhase.FAILED:
                return cmds + self._done(CallOutcome.NO_KEY, now)
            case PromptPhase.PROMPTING:
                self._set_state(_S.PROMPTING)
            case PromptPhase.COLLECTING:
                self._set_state(_S.COLLECTING)
        return cmds

    def _on_key(self, digit: str, now: datetime) -> list[c.Command]:
        assert self.prompt is not None
        return self._after_prompt(self.prompt.on_key(digit), now)

    def _on_playback_end(self, prompt: str, now: datetime) -> list[c.Command]:
        if self.state is _S.THANKING and prompt == self.settings.thanks_key:
            return self._done(CallOutcome.ANSWER, now)
        if self.state is _S.PROMPTING and self.prompt is not None:
            return self._after_prompt(self.prompt.on_playback_end(prompt), now)
        return []

    def _on_timer(self, timer_id: str, now: datetime) -> list[c.Command]:
        if timer_id == CALL_LIMIT_TIMER:
            done = CallOutcome.ANSWER if self.key is not None else CallOutcome.NO_KEY
            if self.state is _S.DIALING:
                return [*self.dialer.cancel(now), *self._done(CallOutcome.NO_ANSWER, now, True)]
            return self._done(done, now, limit_fired=True)
        if self.state is _S.DIALING:
            cmds = self.dialer.on_timer(timer_id, now) or []
            return cmds + self._after_dial(now)
        if self.state is _S.COLLECTING and self.prompt is not None:
            fired = self.prompt.on_timer(timer_id)
            return [] if fired is None else self._after_prompt(fired, now)
        return []

    def _done(
        self, outcome: CallOutcome, now: datetime, limit_fired: bool = False
    ) -> list[c.Command]:
        self.outcome = outcome
        self.ended_at = now
        cmds = self.prompt.cancel() if self.prompt is not None else []
        if not limit_fired:
            cmds.append(c.CancelTimer(CALL_LIMIT_TIMER))
        if self.leg_id is not None:
            cmds.append(c.Hangup(self.leg_id))
        self._set_state(_S.DONE)
        result = self.result()
        return [
            *cmds,
            c.Save(self._flow_id, result),
            c.Notify(self._flow_id, "call.done", None, outcome),
        ]

    def result(self) -> KeyPromptResult:
        """What the call stored so far (final once `finished`)."""
        return KeyPromptResult(
            flow_id=self._flow_id,
            number=self.number,
            state=self.state,
            outcome=self.outcome,
            key=self.key,
            answer=self.settings.keys.get(self.key) if self.key else None,
            invalid_keys=self.invalid_keys,
            prompts_played=self.prompts_played,
            attempt=self.dialer.attempts[-1] if self.dialer.attempts else None,
            answered_at=self.answered_at,
            key_at=self.key_at,
            ended_at=self.ended_at,
        )
