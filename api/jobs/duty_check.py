"""查岗: call a unit's on-duty phone, ask for a keypress, store pass or fail.

The call itself goes through the `DutyCheckCaller` seam: the SIP user agent and media engine
implement it (the lead wires the real one with `set_caller`); tests use a fake. Only a `1`
pressed on an answered call is a pass; anything else is stored as a failure with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from api.duty import DialEntry, unit_dial_list, week_of
from storage import registry as repo
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.registry import DutyCheckOutcome
from storage.registry import DutyCheckRecord
from telephony.privacy import mask_number

log = logging.getLogger(__name__)

PROMPT = (
    "这里是110指挥中心查岗，请按1确认在岗。"
    " This is the 110 command center duty check: please press 1 to confirm you are on duty."
)
EXPECTED_KEY = "1"
_SLACK_S = 15.0  # on top of the answer timeout: ringing, prompt playback


@dataclass(frozen=True, slots=True)
class CallResult:
    """What the caller observed. `key` is the first DTMF digit received, if any."""

    outcome: DutyCheckOutcome
    key: str | None = None
    detail: str | None = None


class DutyCheckCaller(Protocol):
    """Places the check call: dial, play the prompt once answered, wait for a key."""

    async def call(
        self, number: str, *, prompt: str, expect_key: str, timeout_s: float
    ) -> CallResult:
        """Return when the call has ended; never raise for busy / no answer (use outcome)."""
        ...


class NoDutyPhone(LookupError):
    """The unit has no number to call (no roster and no fallback)."""


_caller: DutyCheckCaller | None = None


def set_caller(caller: DutyCheckCaller | None) -> None:
    """Install the caller scheduled checks use (the composition root calls this)."""
    global _caller
    _caller = caller


def caller_installed() -> bool:
    """True once telephony has installed a caller (duty checks can run)."""
    return _caller is not None


async def run_duty_check(
    session_factory: sessionmaker[Session],
    caller: DutyCheckCaller,
    unit_code: str,
    *,
    zone: ZoneInfo,
    clock: Callable[[], datetime] = utcnow,
    timeout_s: float = 30.0,
) -> DutyCheckRecord:
    """Call the first number of the unit's dial list now and store the outcome."""
    started = clock()
    week = week_of(started, zone)
    # Database work runs in a thread: the event loop keeps serving calls and requests.
    entries = await asyncio.to_thread(_lookup, session_factory, unit_code, started, zone)
    if not entries:
        raise NoDutyPhone(f"unit {unit_code} has no duty phone for {week}")
    target = entries[0]
    log.info("duty check %s: calling %s (%s)", unit_code, mask_number(target.number), target.role)
    result = await _call(caller, target.number, timeout_s)
    outcome = result.outcome
    if outcome is DutyCheckOutcome.PASSED and result.key != EXPECTED_KEY:
        outcome = DutyCheckOutcome.NO_KEY
    finished = clock()

    def store() -> DutyCheckRecord:
        with session_scope(session_factory) as session:
            return repo.record_duty_check(
                session,
                unit_code,
                week=week,
                number=target.number,
                person=target.name,
                outcome=outcome,
                key_pressed=result.key,
                detail=result.detail,
                started_at=started,
                finished_at=finished,
            )

    record = await asyncio.to_thread(store)
    log.info("duty check %s: %s", unit_code, outcome.value)
    return record


def _lookup(
    session_factory: sessionmaker[Session], unit_code: str, at: datetime, zone: ZoneInfo
) -> list[DialEntry]:
    with session_scope(session_factory) as session:
        return unit_dial_list(session, unit_code, at, zone)


async def _call(caller: DutyCheckCaller, number: str, timeout_s: float) -> CallResult:
    try:
        return await asyncio.wait_for(
            caller.call(number, prompt=PROMPT, expect_key=EXPECTED_KEY, timeout_s=timeout_s),
            timeout_s + _SLACK_S,
        )
    except TimeoutError:
        return CallResult(DutyCheckOutcome.NO_ANSWER, detail="no result within the deadline")
    except Exception as exc:  # a failed call is a recorded failure, never a lost check
        log.exception("duty check call to %s failed", mask_number(number))
        return CallResult(DutyCheckOutcome.FAILED, detail=f"call failed: {type(exc).__name__}")


async def duty_check_job(database_url: str, timezone: str, unit_code: str) -> str:
    """The scheduled entry point: runs one check with the installed caller."""
    if _caller is None:
        log.error("duty check %s skipped: no caller installed (telephony not running)", unit_code)
        return "skipped"
    engine = make_engine(database_url)
    try:
        record = await run_duty_check(
            make_session_factory(engine), _caller, unit_code, zone=ZoneInfo(timezone)
        )
        return record.outcome.value
    finally:
        engine.dispose()
