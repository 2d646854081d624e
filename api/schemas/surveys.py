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
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from registry.text import csv_cell
from storage.attempts import AttemptInfo
from storage.models.incidents import IncidentCategory
from storage.models.surveys import SurveyStatus
from storage.surveys import StatsCell, SurveyInfo

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
    type: str | None = Field(default=None, description="by_type: the incident's type")
    dispatcher: str | None = Field(default=None, description="by_dispatcher: who recorded it")
    month: str | None = Field(default=None, description="by_month: YYYY-MM in the county's zone")
    finished: int = 0
    effective: int = Field(default=0, description="answered with an accepted key (有效回访)")
    answers: dict[str, int] = Field(default_factory=dict, description="count per answer")
    no_answer: int = Field(default=0, description="unreached after the last attempt")
    cancelled: int = 0
    rework: int = Field(default=0, description="finished surveys whose incident is flagged rework")
    satisfaction_rate: float | None = Field(default=None, description="satisfied / effective")
    satisfaction_pct: str | None = None
    unsatisfied_rate: float | None = None
    unsatisfied_pct: str | None = None
    answer_pct: dict[str, str | None] = Field(default_factory=dict)

    def add(self, cell: StatsCell) -> None:
        self.finished += cell.count
        if cell.rework:
            self.rework += cell.count
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
    by_type: list[Tally] = Field(default_factory=list)
    by_dispatcher: list[Tally] = Field(default_factory=list)
    by_month: list[Tally] = Field(default_factory=list, description="every month of the period")


def _months(start: datetime, end: datetime, zone: ZoneInfo) -> list[str]:
    """Every YYYY-MM from the month of `start` to the month of `end` (exclusive end instant)."""
    first = start.astimezone(zone)
    last = (end - timedelta(microseconds=1)).astimezone(zone)
    year, month = first.year, first.month
    out: list[str] = []
    while (year, month) <= (last.year, last.month) and len(out) < 240:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def summarise(
    cells: Iterable[StatsCell],
    answers: Sequence[str],
    *,
    period_from: datetime | None = None,
    period_to: datetime | None = None,
    unit: str | None = None,
    category: IncidentCategory | None = None,
    zone: ZoneInfo | None = None,
) -> SurveyStats:
    """Total, per unit and per category tallies of the counted cells; per type, dispatcher and
    month (in `zone`; every month of a bounded period, empty ones too) for per-survey cells
    (storage.surveys.finished_facts)."""
    zero = dict.fromkeys(answers, 0)
    total = Tally(answers=dict(zero))
    units: dict[str | None, Tally] = {}
    categories: dict[IncidentCategory | None, Tally] = {}
    types: dict[str | None, Tally] = {}
    dispatchers: dict[str | None, Tally] = {}
    months: dict[str, Tally] = {}
    if zone is not None and period_from is not None and period_to is not None:
        months = {
            m: Tally(month=m, answers=dict(zero)) for m in _months(period_from, period_to, zone)
        }
    facts = False
    for cell in cells:
        total.add(cell)
        units.setdefault(cell.unit_code, Tally(unit_code=cell.unit_code, answers=dict(zero)))
        units[cell.unit_code].add(cell)
        categories.setdefault(cell.category, Tally(category=cell.category, answers=dict(zero)))
        categories[cell.category].add(cell)
        if cell.finished_at is None:
            continue
        facts = True
        types.setdefault(cell.type, Tally(type=cell.type, answers=dict(zero))).add(cell)
        dispatchers.setdefault(
            cell.dispatcher, Tally(dispatcher=cell.dispatcher, answers=dict(zero))
        ).add(cell)
        if zone is not None:
            key = cell.finished_at.astimezone(zone).strftime("%Y-%m")
            months.setdefault(key, Tally(month=key, answers=dict(zero))).add(cell)
    return SurveyStats(
        period_from=period_from,
        period_to=period_to,
        unit=unit,
        category=category,
        total=total.finish(),
        by_unit=[units[k].finish() for k in sorted(units, key=lambda u: u or "")],
        by_category=[categories[k].finish() for k in sorted(categories, key=lambda c: c or "")],
        by_type=[types[k].finish() for k in sorted(types, key=lambda t: t or "")],
        by_dispatcher=[dispatchers[k].finish() for k in sorted(dispatchers, key=lambda d: d or "")],
        by_month=[months[k].finish() for k in sorted(months)] if facts or months else [],
    )


GROUPS = ("unit", "type", "month", "dispatcher", "category")
_GROUP_HEAD = {
    "unit": "单位 unit", "type": "警情类型 type", "month": "月份 month",
    "dispatcher": "接警调度员 dispatcher", "category": "类别 category",
}  # fmt: skip


def stats_table(stats: SurveyStats, answers: Sequence[str], group: str) -> list[list[object]]:
    """The export of one breakdown: a header, the total, then one row per group (figures equal
    to the JSON's)."""
    head: list[object] = [_GROUP_HEAD[group], "已完成 finished", "有效回访 effective",
                          *answers, "未接通 no_answer", "已取消 cancelled", "返工 rework",
                          "满意率% satisfaction_pct", "不满意率% unsatisfied_pct"]  # fmt: skip
    rows: list[list[object]] = [head]

    def row(key: str, t: Tally) -> None:
        rows.append([key, t.finished, t.effective, *[t.answers.get(a, 0) for a in answers],
                     t.no_answer, t.cancelled, t.rework, t.satisfaction_pct or "",
                     t.unsatisfied_pct or ""])  # fmt: skip

    row("合计 total", stats.total)
    tallies = {"unit": stats.by_unit, "type": stats.by_type, "month": stats.by_month,
               "dispatcher": stats.by_dispatcher, "category": stats.by_category}[group]  # fmt: skip
    for t in tallies:
        cat = t.category.value if t.category else None
        cat = t.category.value if t.category else None
        key = {"unit": t.unit_code, "type": t.type, "month": t.month,
               "dispatcher": t.dispatcher, "category": cat}[group]  # fmt: skip
        row(key or "（无）", t)
    return rows


def table_csv(rows: list[list[object]]) -> str:
    """CSV text (UTF-8 BOM prefix for Excel)."""
    out = io.StringIO()
    safe = [[csv_cell(v) if isinstance(v, str) else v for v in r] for r in rows]
    csv.writer(out, lineterminator="\r\n").writerows(safe)
    return "\ufeff" + out.getvalue()


def table_xlsx(rows: list[list[object]], title: str) -> bytes:
    """A one-sheet workbook; counts are numbers, percentages text as in the JSON. Text (an
    incident type, a dispatcher's name) is a string cell, never a formula (issue 13)."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title[:31]
    for r, values in enumerate(rows, start=1):
        for c, value in enumerate(values, start=1):
            cell = sheet.cell(row=r, column=c)
            cell.value = value
            if isinstance(value, str):
                cell.data_type = "s"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


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
            [group, csv_cell(t.unit_code or ""), cat, t.finished, t.effective, *counts,
             t.no_answer, t.cancelled, t.satisfaction_pct or "", t.unsatisfied_pct or ""]
        )  # fmt: skip

    row("total", stats.total)
    for t in stats.by_unit:
        row("unit", t)
    for t in stats.by_category:
        row("category", t)
    return "\ufeff" + out.getvalue()
