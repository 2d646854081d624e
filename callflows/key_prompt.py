"""Prompt an answered leg and collect one key: the one place a pressed key gets its meaning.

`KeyPrompt` is a small sans-IO machine owned by a flow: the survey and duty-check calls
(`callflows.ivr.KeyPromptCall`) and the answer confirmation of a bridge's unit legs
(`callflows.unit_answer`) both run one. States and legal transitions (`PROMPT_TRANSITIONS`)::

    PROMPTING ──prompt ends──▶ COLLECTING ──key timeout / invalid key, repeats left──▶ PROMPTING
    PROMPTING, COLLECTING ──accepted key──▶ ACCEPTED
    PROMPTING, COLLECTING ──no repeats left / window over / invalid key (strict)──▶ FAILED

A key pressed while the prompt plays counts (the prompt is stopped). With `max_repeats` the
prompt plays at most `1 + max_repeats` times, each followed by `key_timeout_s` of waiting;
with `window_s` instead (and `max_repeats=None`) it repeats, `key_timeout_s` apart, until the
window is over. `invalid_key_repeats=False` makes any other key a failure at once.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from callflows import commands as c
from callflows.errors import CallflowConfigError, IllegalTransitionError

log = logging.getLogger(__name__)


class PromptPhase(enum.Enum):
    """Where a key prompt is."""

    PROMPTING = "prompting"
    COLLECTING = "collecting"
    ACCEPTED = "accepted"
    FAILED = "failed"


_P = PromptPhase
PROMPT_TRANSITIONS: dict[PromptPhase, frozenset[PromptPhase]] = {
    _P.PROMPTING: frozenset({_P.PROMPTING, _P.COLLECTING, _P.ACCEPTED, _P.FAILED}),
    _P.COLLECTING: frozenset({_P.PROMPTING, _P.ACCEPTED, _P.FAILED}),
    _P.ACCEPTED: frozenset(),
    _P.FAILED: frozenset(),
}


@dataclass(frozen=True)
class PromptRules:
    """The prompt, the accepted keys (digit -> meaning), the waiting and the repeats."""

    prompt_key: str
    keys: Mapping[str, str]
    key_timeout_s: float = 8.0
    max_repeats: int | None = 2
    window_s: float | None = None
    invalid_key_repeats: bool = True

    def __post_init__(self) -> None:
        if not self.keys:
            raise CallflowConfigError("at least one accepted key is needed")
        bad = [k for k in self.keys if len(k) != 1 or k not in "0123456789*#"]
        if bad:
            raise CallflowConfigError(f"not keypad keys: {bad}")
        if self.key_timeout_s <= 0 or (self.window_s is not None and self.window_s <= 0):
            raise CallflowConfigError("timeouts must be positive")
        if self.max_repeats is None and self.window_s is None:
            raise CallflowConfigError("unlimited repeats need a window")
        if self.max_repeats is not None and self.max_repeats < 0:
            raise CallflowConfigError("repeats must be >= 0")


class KeyPrompt:
    """One prompt-and-key exchange on an answered leg. `start()`, then feed what happens."""

    def __init__(self, flow_id: str, leg_id: str, rules: PromptRules, timer_prefix: str = "key"):
        self.flow_id = flow_id
        self.leg_id = leg_id
        self.rules = rules
        self.phase = PromptPhase.PROMPTING
        self.key: str | None = None
        self.invalid_keys: list[str] = []
        self.prompts_played = 0
        self._prefix = timer_prefix
        self._key_timer: str | None = None

    @property
    def window_timer(self) -> str:
        """The id of the timer that bounds the whole exchange (window mode)."""
        return f"{self._prefix}:window"

    @property
    def done(self) -> bool:
        """True once a key was accepted or the prompt gave up."""
        return self.phase in (PromptPhase.ACCEPTED, PromptPhase.FAILED)

    @property
    def answer(self) -> str | None:
        """The meaning of the accepted key."""
        return self.rules.keys.get(self.key) if self.key is not None else None

    def _set_phase(self, new: PromptPhase) -> None:
        if new not in PROMPT_TRANSITIONS[self.phase]:
            raise IllegalTransitionError(
                f"key prompt cannot go from {self.phase.value} to {new.value}",
                flow_id=self.flow_id,
                party=self.leg_id,
                state=self.phase.value,
            )
        log.debug("prompt %s %s - %s -> %s", self.flow_id, self.leg_id, self.phase, new)
        self.phase = new

    def start(self) -> list[c.Command]:
        """Play the prompt the first time (and start the window, if any)."""
        window = self.rules.window_s
        timer = [c.StartTimer(self.window_timer, window)] if window is not None else []
        return [*timer, *self._play()]

    def _play(self) -> list[c.Command]:
        self.prompts_played += 1
        self._set_phase(PromptPhase.PROMPTING)
        return [c.Play(self.leg_id, self.rules.prompt_key, True)]

    def on_key(self, digit: str) -> list[c.Command]:
        """A key pressed on the leg (ignored once done)."""
        if self.done:
            return []
        cmds: list[c.Command] = []
        if self.phase is PromptPhase.PROMPTING:
            cmds.append(c.StopPlayback(self.leg_id))
        cmds += self._cancel_key_timer()
        if digit not in self.rules.keys:
            self.invalid_keys.append(digit)
            if not self.rules.invalid_key_repeats:
                return cmds + self._finish(PromptPhase.FAILED)
            return cmds + self._retry()
        self.key = digit
        return cmds + self._finish(PromptPhase.ACCEPTED)

    def on_playback_end(self, prompt: str) -> list[c.Command]:
        """The prompt played to its end: wait for a key."""
        if self.phase is not PromptPhase.PROMPTING or prompt != self.rules.prompt_key:
            return []
        self._set_phase(PromptPhase.COLLECTING)
        self._key_timer = f"{self._prefix}:{self.prompts_played}"
        return [c.StartTimer(self._key_timer, self.rules.key_timeout_s)]

    def on_timer(self, timer_id: str) -> list[c.Command] | None:
        """A key timeout or the end of the window; None if the timer is not this prompt's."""
        if self.done:
            return None
        if timer_id == self.window_timer and self.rules.window_s is not None:
            stop: list[c.Command] = (
                [c.StopPlayback(self.leg_id)] if self.phase is PromptPhase.PROMPTING else []
            )
            return stop + self._finish(PromptPhase.FAILED, window_fired=True)
        if timer_id == self._key_timer and self.phase is PromptPhase.COLLECTING:
            self._key_timer = None
            return self._retry()
        return None

    def _retry(self) -> list[c.Command]:
        limit = self.rules.max_repeats
        if limit is not None and self.prompts_played > limit:
            return self._finish(PromptPhase.FAILED)
        return self._play()

    def _cancel_key_timer(self) -> list[c.Command]:
        if self._key_timer is None:
            return []
        timer, self._key_timer = self._key_timer, None
        return [c.CancelTimer(timer)]

    def _finish(self, phase: PromptPhase, window_fired: bool = False) -> list[c.Command]:
        cmds = self._cancel_key_timer()
        if self.rules.window_s is not None and not window_fired:
            cmds.append(c.CancelTimer(self.window_timer))
        self._set_phase(phase)
        return cmds

    def cancel(self) -> list[c.Command]:
        """Stop waiting (the leg ended or the flow is over): cancel the timers."""
        if self.done:
            return []
        return self._finish(PromptPhase.FAILED)
