"""查岗: call a unit's on-duty phone, ask for a keypress, store pass or fail.

The call itself goes through the `DutyCheckCaller` seam: the real one (calls/duty_check_caller.py)
places a `callflows.duty_check` IVR call that plays the `duty_check.prompt` prompt and turns its
result into pass/fail with `callflows.duty_check.verdict` (the one place that decides); the
composition root installs it with `set_caller`; tests use a fake. This module picks whom to
call (the unit dial list) and stores what the caller reports.
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

from registry.duty import UnitDialList, unit_dial_list
from registry.numbers import DialPolicy
from storage import registry as repo
from storage.base import utcnow
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.registry import DutyCheckOutcome
from storage.registry import DutyCheckRecord
from telephony.privacy import mask_number

log = logging.getLogger(__name__)

_SLACK_S = 15.0  # on top of the answer timeout: ringing, prompt playback


@dataclass(frozen=True, slots=True)
class DutyCheckCallResult:
    """What the caller decided: pass or the reason it failed; `key` the digit pressed, if any."""

    outcome: DutyCheckOutcome
    key: str | None = None
    detail: str | None = None


class DutyCheckCaller(Protocol):
    """Places the check call: dial, play the duty-check prompt once answered, wait for a key."""

    async def call(self, number: str, *, timeout_s: float) -> DutyCheckCallResult:
        """Return when the call has ended; never raise for busy / no answer (use outcome)."""
        ...


class NoDutyPhone(LookupError):
    """The unit has no number to call (no roster and no fallback)."""


_caller: DutyCheckCaller | None = None
_policy = DialPolicy()


def set_caller(caller: DutyCheckCaller | None, policy: DialPolicy | None = None) -> None:
    """Install the caller scheduled checks use, and the dial policy (the composition root)."""
    global _caller, _policy
    _caller = caller
    _policy = policy or DialPolicy()


def caller_installed() -> bool:
    """True once telephony has installed a caller (duty checks can run)."""
    return _caller is not None


async def run_duty_check(
    session_factory: sessionmaker[Session],
    caller: DutyCheckCaller,
    unit_code: str,
    *,
    zone: ZoneInfo,
    policy: DialPolicy | None = None,
    clock: Callable[[], datetime] = utcnow,
    timeout_s: float = 30.0,
) -> DutyCheckRecord:
    """Call the first dialable number of the unit's dial list now and store the outcome."""
    started = clock()
    # Database work runs in a thread: the event loop keeps serving calls and requests.
    dial = await asyncio.to_thread(
        _lookup, session_factory, unit_code, started, zone, policy or _policy
    )
    week = dial.week
    targets = [t for t in dial.targets if t.dial is not None]
    if not targets:
        raise NoDutyPhone(f"unit {unit_code} has no duty phone for {week}")
    entry = targets[0].entry
    log.info("duty check %s: calling %s (%s)", unit_code, mask_number(entry.number), entry.role)
    result = await _call(caller, entry.number, timeout_s)
    outcome = result.outcome
    finished = clock()

    def store() -> DutyCheckRecord:
        with session_scope(session_factory) as session:
            return repo.record_duty_check(
                session,
                unit_code,
                week=week,
                number=entry.number,
                person=entry.name,
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
    session_factory: sessionmaker[Session],
    unit_code: str,
    at: datetime,
    zone: ZoneInfo,
    policy: DialPolicy,
) -> UnitDialList:
    with session_scope(session_factory) as session:
        return unit_dial_list(session, unit_code, at, zone, policy)


async def _call(caller: DutyCheckCaller, number: str, timeout_s: float) -> DutyCheckCallResult:
    try:
        return await asyncio.wait_for(
            caller.call(number, timeout_s=timeout_s), timeout_s + _SLACK_S
        )
    except TimeoutError:
        return DutyCheckCallResult(
            DutyCheckOutcome.NO_ANSWER, detail="no result within the deadline"
        )
    except Exception as exc:  # a failed call is a recorded failure, never a lost check
        log.exception("duty check call to %s failed", mask_number(number))
        return DutyCheckCallResult(
            DutyCheckOutcome.FAILED, detail=f"call failed: {type(exc).__name__}"
        )


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
