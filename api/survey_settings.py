"""Callback survey settings (environment variables prefixed LINKCALL_SURVEY_).

Calling hours are local times in the county's zone (LINKCALL_TIMEZONE). Keys map a keypad
digit to the stored answer: `1=satisfied,2=basically_satisfied,3=unsatisfied` by default;
an answer listed in `rework_answers` flags the incident for rework.
"""

from __future__ import annotations

import os
import socket
from datetime import time, timedelta

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callflows.ivr import CallOutcome, KeyPromptSettings
from callflows.survey import CallingHours, RetryPolicy, SurveySchedule


def _parse_hours(value: str) -> tuple[time, time]:
    start, sep, end = value.partition("-")
    if not sep:
        raise ValueError(f"calling hours must be HH:MM-HH:MM, got {value!r}")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


class SurveySettings(BaseSettings):
    """How callback surveys are scheduled, retried and claimed."""

    model_config = SettingsConfigDict(env_prefix="LINKCALL_SURVEY_", extra="ignore")

    enabled: bool = Field(default=True, description="place survey calls from this process")
    hours: str = Field(default="08:30-21:00", description="calling hours, local HH:MM-HH:MM")
    delay_after_close_s: float = Field(default=3600.0, ge=0, description="first call after close")
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_no_answer_s: float = Field(default=1800.0, gt=0)
    retry_busy_s: float = Field(default=600.0, gt=0)
    retry_failed_s: float = Field(default=3600.0, gt=0)
    retry_no_key_s: float = Field(default=3600.0, gt=0)
    backoff: float = Field(default=2.0, ge=1)
    max_delay_s: float = Field(default=43200.0, gt=0)
    keys: str = Field(default="1=satisfied,2=basically_satisfied,3=unsatisfied")
    rework_answers: str = Field(default="unsatisfied", description="comma-separated answers")
    poll_s: float = Field(default=15.0, gt=0, description="how often the dispatcher looks")
    lease_s: float = Field(default=300.0, gt=0, description="claim lease, renewed during calls")
    max_concurrent: int = Field(default=10, ge=1, description="calls per process at once")
    node: str = Field(default="", description="this process's name in claims; default host:pid")

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, v: str) -> str:
        _parse_hours(v)
        return v

    @field_validator("keys")
    @classmethod
    def _check_keys(cls, v: str) -> str:
        cls.key_map_of(v)
        return v

    @staticmethod
    def key_map_of(value: str) -> dict[str, str]:
        """`1=satisfied,2=...` as a dict; ValueError when malformed."""
        out: dict[str, str] = {}
        for part in value.split(","):
            digit, sep, answer = part.strip().partition("=")
            if not sep or len(digit) != 1 or digit not in "0123456789*#" or not answer:
                raise ValueError(f"keys must be digit=answer pairs, got {part!r}")
            out[digit] = answer.strip()
        return out

    @property
    def key_map(self) -> dict[str, str]:
        """Keypad digit → stored answer."""
        return self.key_map_of(self.keys)

    @property
    def rework_answer_set(self) -> frozenset[str]:
        """Answers that flag the incident for rework."""
        return frozenset(a.strip() for a in self.rework_answers.split(",") if a.strip())

    @property
    def node_name(self) -> str:
        """The name this process claims surveys under."""
        return self.node or f"{socket.gethostname()}:{os.getpid()}"

    def schedule(self, zone: str) -> SurveySchedule:
        """The pure scheduling policy (callflows.survey) these settings describe."""
        start, end = _parse_hours(self.hours)
        delays = {
            CallOutcome.NO_ANSWER: timedelta(seconds=self.retry_no_answer_s),
            CallOutcome.BUSY: timedelta(seconds=self.retry_busy_s),
            CallOutcome.FAILED: timedelta(seconds=self.retry_failed_s),
            CallOutcome.NO_KEY: timedelta(seconds=self.retry_no_key_s),
        }
        return SurveySchedule(
            hours=CallingHours(start, end, zone),
            retry=RetryPolicy(
                max_attempts=self.max_attempts,
                delays=delays,
                backoff=self.backoff,
                max_delay=timedelta(seconds=self.max_delay_s),
            ),
            delay_after_close=timedelta(seconds=self.delay_after_close_s),
        )

    def ivr(self) -> KeyPromptSettings:
        """The survey IVR: prompt and thanks keys of api/prompts.py, the configured keys."""
        return KeyPromptSettings(
            prompt_key="survey.question", keys=self.key_map, thanks_key="survey.thanks"
        )
