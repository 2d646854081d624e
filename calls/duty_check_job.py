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
# a number nobody answered (or busy): the check goes on to the next number of the dial list
_NEXT_NUMBER = frozenset({DutyCheckOutcome.NO_ANSWER, DutyCheckOutcome.BUSY})


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
    """Call the unit's current dial list now, down the list while a number is not answered
    or busy, and store the outcome of the last call (pass only when 1 was pressed: the
    caller's verdict, callflows.duty_check.verdict)."""
    started = clock()
    # Database work runs in a thread: the event loop keeps serving calls and requests.
    dial = await asyncio.to_thread(
        _lookup, session_factory, unit_code, started, zone, policy or _policy
    )
    week = dial.week
    targets = [t for t in dial.targets if t.dial is not None]
    if not targets:
        raise NoDutyPhone(f"unit {unit_code} has no duty phone for {week}")
    tried: list[str] = []
    for position, target in enumerate(targets, start=1):
        entry = target.entry
        log.info(
            "duty check %s: calling %s (%s, %d of %d)",
            unit_code, mask_number(entry.number), entry.role, position, len(targets),
        )  # fmt: skip
        result = await _call(caller, entry.number, timeout_s)
        tried.append(f"{entry.role} {result.outcome.value}")
        if result.outcome not in _NEXT_NUMBER:
            break
    outcome = result.outcome
    finished = clock()
    detail = "; ".join(filter(None, [result.detail, f"tried {len(tried)}: " + ", ".join(tried)]))

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
                detail=detail,
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
