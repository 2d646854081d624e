"""Survey bodies and the satisfaction statistics (definitions in docs/surveys.md).

- effective callbacks (有效回访): finished surveys answered with an accepted key;
- satisfaction rate (满意率) = answers "satisfied" / effective callbacks; the unsatisfied rate
  likewise; surveys never answered ("no answer": unreached) and cancelled ones are counted
  but are not in the denominator;
- percentages are rounded half up to one decimal, or two decimals below 1 %
  (7,031 / 8,520 → "82.5", 11 / 8,520 → "0.13").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, Field

from storage.models.incidents import IncidentCategory
from storage.models.surveys import SurveyStatus
from storage.surveys import AttemptInfo, StatsCell, SurveyInfo

SATISFIED = "satisfied"
UNSATISFIED = "unsatisfied"


class SurveyIn(BaseModel):
    """A callback survey to schedule."""

    number: str = Field(max_length=40, examples=["13812345678"])
    incident_id: str | None = Field(default=None, max_length=32)
    not_before: datetime | None = Field(
        default=None, description="not earlier than this (moved into calling hours)"
    )


class AttemptOut(BaseModel):
    """One call placed for the survey."""

    attempt_no: int
    node: str
    outcome: str
    sip_reason: str | None
    key: str | None
    digits: str
    recording_id: str | None
    started_at: datetime
    ended_at: datetime

    @classmethod
    def of(cls, a: AttemptInfo) -> AttemptOut:
        return cls(
            attempt_no=a.attempt_no,
            node=a.node,
            outcome=a.outcome,
            sip_reason=a.sip_reason,
            key=a.key,
            digits=a.digits,
            recording_id=a.recording_id,
            started_at=a.started_at,
            ended_at=a.ended_at,
        )


class SurveyOut(BaseModel):
    """A survey, with its attempts when read one by one."""

    id: str
    number: str
    incident_id: str | None
    status: SurveyStatus
    not_before: datetime
    next_attempt_at: datetime | None
    attempts: int
    answer_key: str | None
    answer: str | None
    last_outcome: str | None
    end_reason: str | None
    recording_id: str | None
    created_by: str
    created_at: datetime
    answered_at: datetime | None
    finished_at: datetime | None
    attempt_log: list[AttemptOut] = Field(default_factory=list)

    @classmethod
    def of(cls, s: SurveyInfo) -> SurveyOut:
        return cls(
            id=s.id,
            number=s.number,
            incident_id=s.incident_id,
            status=s.status,
            not_before=s.not_before,
            next_attempt_at=s.next_attempt_at,
            attempts=s.attempts,
            answer_key=s.answer_key,
            answer=s.answer,
            last_outcome=s.last_outcome,
            end_reason=s.end_reason,
            recording_id=s.recording_id,
            created_by=s.created_by,
            created_at=s.created_at,
            answered_at=s.answered_at,
            finished_at=s.finished_at,
            attempt_log=[AttemptOut.of(a) for a in s.attempt_log],
        )


def percent(part: int, whole: int) -> str | None:
    """`part / whole` in percent as the center reports it; None when `whole` is 0."""
    if whole == 0:
        return None
    value = Decimal(part) * 100 / Decimal(whole)
    step = Decimal("0.1") if value >= 1 or value == 0 else Decimal("0.01")
    return str(value.quantize(step, rounding=ROUND_HALF_UP))


class Tally(BaseModel):
    """Finished surveys of one group (all, a unit, a category)."""

    unit_code: str | None = None
    category: IncidentCategory | None = None
    finished: int = 0
    effective: int = Field(default=0, description="answered with an accepted key (有效回访)")
    answers: dict[str, int] = Field(default_factory=dict, description="count per answer")
    no_answer: int = Field(default=0, description="unreached after the last attempt")
    cancelled: int = 0
    satisfaction_rate: float | None = Field(default=None, description="satisfied / effective")
    satisfaction_pct: str | None = None
    unsatisfied_rate: float | None = None
    unsatisfied_pct: str | None = None
    answer_pct: dict[str, str | None] = Field(default_factory=dict)

    def add(self, cell: StatsCell) -> None:
        self.finished += cell.count
        if cell.status is SurveyStatus.ANSWERED and cell.answer is not None:
            self.effective += cell.count
            self.answers[cell.answer] = self.answers.get(cell.answer, 0) + cell.count
        elif cell.status is SurveyStatus.UNREACHED:
            self.no_answer += cell.count
        elif cell.status is SurveyStatus.CANCELLED:
            self.cancelled += cell.count

    def finish(self) -> Tally:
        sat, unsat = self.answers.get(SATISFIED, 0), self.answers.get(UNSATISFIED, 0)
        if self.effective:
            self.satisfaction_rate = sat / self.effective
            self.unsatisfied_rate = unsat / self.effective
        self.satisfaction_pct = percent(sat, self.effective)
        self.unsatisfied_pct = percent(unsat, self.effective)
        self.answer_pct = {a: percent(n, self.effective) for a, n in self.answers.items()}
        return self


class SurveyStats(BaseModel):
    """Satisfaction statistics of surveys finished in [from, to)."""

    period_from: datetime | None
    period_to: datetime | None
    unit: str | None
    category: IncidentCategory | None
    total: Tally
    by_unit: list[Tally]
    by_category: list[Tally]


def summarise(
    cells: Iterable[StatsCell],
    answers: Sequence[str],
    *,
    period_from: datetime | None = None,
    period_to: datetime | None = None,
    unit: str | None = None,
    category: IncidentCategory | None = None,
) -> SurveyStats:
    """Total, per unit and per category tallies of the counted cells."""
    zero = dict.fromkeys(answers, 0)
    total = Tally(answers=dict(zero))
    units: dict[str | None, Tally] = {}
    categories: dict[IncidentCategory | None, Tally] = {}
    for cell in cells:
        total.add(cell)
        units.setdefault(cell.unit_code, Tally(unit_code=cell.unit_code, answers=dict(zero)))
        units[cell.unit_code].add(cell)
        categories.setdefault(cell.category, Tally(category=cell.category, answers=dict(zero)))
        categories[cell.category].add(cell)
    return SurveyStats(
        period_from=period_from,
        period_to=period_to,
        unit=unit,
        category=category,
        total=total.finish(),
        by_unit=[units[k].finish() for k in sorted(units, key=lambda u: u or "")],
        by_category=[categories[k].finish() for k in sorted(categories, key=lambda c: c or "")],
    )


def stats_csv(stats: SurveyStats, answers: Sequence[str]) -> str:
    """One row for the total, each unit and each category (UTF-8 with BOM for Excel)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    head = ["group", "unit_code", "category", "finished", "effective", *answers]
    writer.writerow([*head, "no_answer", "cancelled", "satisfaction_pct", "unsatisfied_pct"])

    def row(group: str, t: Tally) -> None:
        cat = t.category.value if t.category else ""
        counts = [t.answers.get(a, 0) for a in answers]
        writer.writerow(
            [group, t.unit_code or "", cat, t.finished, t.effective, *counts, t.no_answer,
             t.cancelled, t.satisfaction_pct or "", t.unsatisfied_pct or ""]
        )  # fmt: skip

    row("total", stats.total)
    for t in stats.by_unit:
        row("unit", t)
    for t in stats.by_category:
        row("category", t)
    return "\ufeff" + out.getvalue()
