"""The 查岗 report for the supervisor: results in a period, a per-unit summary, the plan."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from storage import duty_plans
from storage import registry as repo
from storage.duty_plans import PlannedCheck
from storage.models.registry import DutyCheckOutcome
from storage.registry import DutyCheckRecord


@dataclass(frozen=True, slots=True)
class UnitDutyCheckSummary:
    """How one unit did: checks placed, passed (1 pressed), failed (anything else)."""

    unit_code: str
    checks: int
    passed: int
    failed: int


@dataclass(frozen=True, slots=True)
class DutyCheckReport:
    """Checks started in [from, to), newest first (at most `limit`); the summary by unit code
    (of those checks); planned checks due in the period (scheduled 查岗, with their state)."""

    checks: tuple[DutyCheckRecord, ...]
    summary: tuple[UnitDutyCheckSummary, ...]
    planned: tuple[PlannedCheck, ...]


def summarise(checks: list[DutyCheckRecord]) -> tuple[UnitDutyCheckSummary, ...]:
    """Count checks, passes and failures per unit."""
    counts: dict[str, list[int]] = {}
    for check in checks:
        c = counts.setdefault(check.unit_code, [0, 0])
        c[0] += 1
        c[1] += check.outcome is DutyCheckOutcome.PASSED
    return tuple(
        UnitDutyCheckSummary(code, n, passed, n - passed)
        for code, (n, passed) in sorted(counts.items())
    )


def duty_check_report(
    session: Session,
    *,
    started_from: datetime | None,
    started_to: datetime | None,
    unit_code: str | None,
    limit: int = 1000,
) -> DutyCheckReport:
    """The report (NotFound for an unknown unit)."""
    if unit_code is not None:
        repo.get_unit(session, unit_code)
    checks = repo.duty_checks_between(
        session, started_from=started_from, started_to=started_to, unit_code=unit_code,
        limit=limit,
    )  # fmt: skip
    plans = duty_plans.list_plans(
        session, due_from=started_from, due_to=started_to, unit_code=unit_code
    )
    return DutyCheckReport(tuple(checks), summarise(checks), tuple(plans))
