"""Checking a unit's answer before it joins the bridge: extension digits, then a key to press.

A voicemail or an auto-attendant can answer a duty phone; only a person who presses the key
(1) has taken the call for the unit (确认接听). A number behind a switchboard needs its
extension keyed in first (总机/分机). `AnswerCheck` runs on one answered unit leg, before it is
joined to the conference. Phases and legal transitions (`CHECK_TRANSITIONS`)::

    DELAY ──extension delay over──▶ SENDING ──digits out──▶ CONFIRMING ──key 1──▶ PASSED
    SENDING ──digits could not be sent──▶ FAILED (extension_failed)
    CONFIRMING ──no key / another key / window over──▶ FAILED (not_confirmed)
    (no extension: start in CONFIRMING; no confirmation: PASSED once the digits are out)

Keys pressed before the digits went out are ignored. Without an extension the prompt plays,
then `timeout_s` of waiting, at most `1 + repeats` times, and another key fails at once; with an
extension the window (`extension_timeout_s`) starts when the digits are out and the prompt
repeats `extension_gap_s` apart until it is over (the extension must ring and be picked up
first, a switchboard may play its own greeting; a wrong key only replays the prompt). The
prompt-and-key part is `callflows.key_prompt.KeyPrompt`, the same as surveys and duty checks.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from callflows import commands as c
from callflows.dialing import EXTENSION_FAILED, NOT_CONFIRMED
from callflows.errors import CallflowConfigError, IllegalTransitionError
from callflows.key_prompt import KeyPrompt, PromptPhase, PromptRules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitAnswerRules:
    """How a unit's answer is checked. `confirm=False` joins a unit as soon as it answered (and
    its extension, if any, was keyed in); `waiting_prompt_key` is played once to the parties
    already connected while a unit is being checked (None: nothing)."""

    confirm: bool = False
    prompt_key: str = "bridge.unit_confirm"
    key: str = "1"
    timeout_s: float = 10.0
    repeats: int = 1
    extension_delay_s: float = 1.5
    extension_timeout_s: float = 40.0
    extension_gap_s: float = 3.0
    waiting_prompt_key: str | None = "bridge.unit_connecting"

    def __post_init__(self) -> None:
        if min(self.timeout_s, self.extension_timeout_s, self.extension_gap_s) <= 0:
            raise CallflowConfigError("confirmation timeouts must be positive")
        if self.extension_delay_s < 0 or self.repeats < 0:
            raise CallflowConfigError("extension delay and repeats must be >= 0")
        self.prompt_rules(extension=False)  # validates the key

    def needs_check(self, extension: str | None) -> bool:
        """True if an answer with this extension must be checked before it joins."""
        return self.confirm or extension is not None

    def prompt_rules(self, *, extension: bool) -> PromptRules:
        """The key prompt for a direct line, or for an extension (a window, not a count)."""
        keys = {self.key: "confirmed"}
        if extension:
            return PromptRules(
                self.prompt_key,
                keys,
                key_timeout_s=self.extension_gap_s,
                max_repeats=None,
                window_s=self.extension_timeout_s,
            )
        return PromptRules(
            self.prompt_key,
            keys,
            key_timeout_s=self.timeout_s,
            max_repeats=self.repeats,
            invalid_key_repeats=False,
        )


class CheckPhase(enum.Enum):
    """Where the check of one answered unit leg is."""

    DELAY = "delay"  # answered; waiting before keying in the extension
    SENDING = "sending"  # extension digits going out
    CONFIRMING = "confirming"  # prompt played, waiting for the key
    PASSED = "passed"
    FAILED = "failed"


_C = CheckPhase
CHECK_TRANSITIONS: dict[CheckPhase, frozenset[CheckPhase]] = {
    _C.DELAY: frozenset({_C.SENDING, _C.FAILED}),
    _C.SENDING: frozenset({_C.CONFIRMING, _C.PASSED, _C.FAILED}),
    _C.CONFIRMING: frozenset({_C.PASSED, _C.FAILED}),
    _C.PASSED: frozenset(),
    _C.FAILED: frozenset(),
}


class AnswerCheck:
    """The check of one answered unit leg. `start(now)`, then feed the leg's timers, digits
    sent, keys and prompt ends; `phase` says when it passed or failed, `result` why."""

    def __init__(
        self, flow_id: str, leg_id: str, extension: str | None, rules: UnitAnswerRules
    ) -> None:
        self.flow_id = flow_id
        self.leg_id = leg_id
        self.extension = extension
        self.rules = rules
        self.phase = CheckPhase.DELAY if extension else CheckPhase.CONFIRMING
        self.result: str | None = None  # not_confirmed | extension_failed once FAILED
        self.extension_sent_at: datetime | None = None
        self.confirmed_at: datetime | None = None
        self.prompt: KeyPrompt | None = None

    @property
    def delay_timer(self) -> str:
        """The timer between the answer and keying in the extension."""
        return f"ext:{self.leg_id}"

    @property
    def done(self) -> bool:
        """True once passed or failed."""
        return self.phase in (CheckPhase.PASSED, CheckPhase.FAILED)

    def _set_phase(self, new: CheckPhase) -> None:
        if new not in CHECK_TRANSITIONS[self.phase]:
            raise IllegalTransitionError(
                f"answer check cannot go from {self.phase.value} to {new.value}",
                flow_id=self.flow_id,
                party=self.leg_id,
                state=self.phase.value,
            )
        log.info("bridge %s %s check - %s -> %s", self.flow_id, self.leg_id, self.phase, new)
        self.phase = new

    def start(self, now: datetime) -> list[c.Command]:
        """Begin: wait to key in the extension, or play the prompt at once."""
        if self.extension:
            return [c.StartTimer(self.delay_timer, self.rules.extension_delay_s)]
        return self._confirm(now)

    def _confirm(self, now: datetime) -> list[c.Command]:
        if not self.rules.confirm:
            self._set_phase(CheckPhase.PASSED)
            return []
        if self.phase is not CheckPhase.CONFIRMING:
            self._set_phase(CheckPhase.CONFIRMING)
        rules = self.rules.prompt_rules(extension=self.extension is not None)
        self.prompt = KeyPrompt(self.flow_id, self.leg_id, rules, f"confirm:{self.leg_id}")
        return self.prompt.start()

    def on_timer(self, timer_id: str, now: datetime) -> list[c.Command] | None:
        """The extension delay or one of the prompt's timers; None if not this check's."""
        if timer_id == self.delay_timer and self.phase is CheckPhase.DELAY:
            self._set_phase(CheckPhase.SENDING)
            assert self.extension is not None
            return [c.SendDigits(self.leg_id, self.extension)]
        if self.phase is CheckPhase.CONFIRMING and self.prompt is not None:
            cmds = self.prompt.on_timer(timer_id)
            return None if cmds is None else cmds + self._after_prompt(now)
        return None

    def on_digits_sent(self, ok: bool, now: datetime) -> list[c.Command]:
        """The extension went out (the window starts now), or could not be sent."""
        if self.phase is not CheckPhase.SENDING:
            return []
        if not ok:
            self.result = EXTENSION_FAILED
            self._set_phase(CheckPhase.FAILED)
            return []
        self.extension_sent_at = now
        return self._confirm(now)

    def on_key(self, digit: str, now: datetime) -> list[c.Command]:
        """A key from the unit's phone: only counts while the prompt asks for it."""
        if self.phase is not CheckPhase.CONFIRMING or self.prompt is None:
            log.debug("bridge %s %s: key %s before the prompt, ignored", self.flow_id,
                      self.leg_id, digit)  # fmt: skip
            return []
        return self.prompt.on_key(digit) + self._after_prompt(now)

    def on_playback_end(self, prompt_key: str, now: datetime) -> list[c.Command]:
        """The prompt played to its end: wait for the key."""
        if self.phase is not CheckPhase.CONFIRMING or self.prompt is None:
            return []
        return self.prompt.on_playback_end(prompt_key) + self._after_prompt(now)

    def _after_prompt(self, now: datetime) -> list[c.Command]:
        assert self.prompt is not None
        if self.prompt.phase is PromptPhase.ACCEPTED:
            self.confirmed_at = now
            self._set_phase(CheckPhase.PASSED)
        elif self.prompt.phase is PromptPhase.FAILED:
            self.result = NOT_CONFIRMED
            self._set_phase(CheckPhase.FAILED)
        return []

    def cancel(self) -> list[c.Command]:
        """Stop the check (the leg ended, the party was dropped): cancel its timers."""
        if self.done:
            return []
        cmds: list[c.Command] = []
        if self.phase is CheckPhase.DELAY:
            cmds.append(c.CancelTimer(self.delay_timer))
        if self.prompt is not None:
            cmds += self.prompt.cancel()
        self.result = NOT_CONFIRMED
        self._set_phase(CheckPhase.FAILED)
        return cmds
