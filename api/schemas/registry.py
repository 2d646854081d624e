"""Request and response bodies of the duty registry, and turning a submission into values.

Field paths in 422 errors follow the JSON body: `leader.phone`, `staff[1].phone` (0-based).
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from api.problems import Problem
from registry.numbers import DialPolicy, NumberError
from registry.text import check_name
from storage.models.registry import DutyCheckOutcome, UnitKind
from storage.registry import (
    DutyCheckRecord,
    RosterValues,
    RosterVersion,
    Shift,
    StaffEntry,
    UnitInfo,
)

UNIT_CODE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"

# Names: printable text, no control or bidi characters, bounded (registry/text.py). The length
# is checked after stripping, so a value that fits the column never reaches the database longer.
PersonName = Annotated[
    str, Field(min_length=1, max_length=100), AfterValidator(lambda v: check_name(v, max_len=100))
]
UnitName = Annotated[
    str,
    Field(min_length=1, max_length=200, examples=["县供电公司"]),
    AfterValidator(lambda v: check_name(v, max_len=200)),
]


class UnitIn(BaseModel):
    """A unit to create."""

    code: str = Field(pattern=UNIT_CODE, examples=["L01"])
    name: UnitName
    kind: UnitKind
    fallback_number: str | None = Field(default=None, max_length=40, examples=["0833-4212345"])
    active: bool = True


class UnitPatch(BaseModel):
    """What to change about a unit; omitted fields stay; `fallback_number: null` clears it."""

    name: UnitName | None = None
    kind: UnitKind | None = None
    fallback_number: str | None = Field(default=None, max_length=40)
    active: bool | None = None


class UnitOut(BaseModel):
    """A unit on the duty list."""

    code: str
    name: str
    kind: UnitKind
    fallback_number: str | None
    active: bool

    @classmethod
    def of(cls, unit: UnitInfo) -> UnitOut:
        return cls(
            code=unit.code,
            name=unit.name,
            kind=unit.kind,
            fallback_number=unit.fallback_number,
            active=unit.active,
        )


class ShiftIn(BaseModel):
    """When a staff member is on duty; omitted = the whole week."""

    days: list[int] = Field(default_factory=list, description="ISO weekdays, 1 = Monday")
    start: time | None = Field(default=None, examples=["08:00"])
    end: time | None = Field(default=None, examples=["18:00"], description="<= start: overnight")

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, v: time | None) -> time | None:
        # a shift is a time of day in the county (LINKCALL_TIMEZONE); "09:00Z" was stored as
        # 09:00, eight hours from what the sender meant, so an offset is refused, not dropped
        if v is not None and v.tzinfo is not None:
            raise ValueError(
                "shift times are the county's local time of day: give them without an offset"
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> Self:
        if any(not 1 <= d <= 7 for d in self.days):
            raise ValueError("days are ISO weekdays 1 (Monday) to 7 (Sunday)")
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        return self

    def value(self) -> Shift:
        return Shift(days=tuple(sorted(set(self.days))), start=self.start, end=self.end)


class PersonIn(BaseModel):
    """The duty leader."""

    name: PersonName
    phone: str = Field(min_length=1, max_length=40)


class StaffIn(BaseModel):
    """A duty staff member; `order` defaults to the position in the list (1-based)."""

    name: PersonName
    phone: str = Field(min_length=1, max_length=40)
    order: int | None = Field(default=None, ge=1, le=99)
    shift: ShiftIn | None = None


class RosterIn(BaseModel):
    """A unit's duty roster for one week."""

    leader: PersonIn
    staff: list[StaffIn] = Field(min_length=1, max_length=50)
    notes: str | None = Field(default=None, max_length=2000)


def roster_values(body: RosterIn, policy: DialPolicy) -> RosterValues:
    """Normalise every number; one 422 problem naming each bad field, nothing stored."""
    errors: list[dict[str, Any]] = []

    def phone(raw: str, field: str) -> str:
        try:
            return policy.check(raw, field=field).canonical
        except NumberError as exc:
            errors.append({"field": field, "message": exc.reason, "type": "phone_number"})
            return raw

    leader_phone = phone(body.leader.phone, "leader.phone")
    staff = tuple(
        StaffEntry(
            name=s.name.strip(),
            phone=phone(s.phone, f"staff[{i}].phone"),
            order=s.order if s.order is not None else i + 1,
            shift=s.shift.value() if s.shift else None,
        )
        for i, s in enumerate(body.staff)
    )
    if errors:
        raise invalid_numbers(errors)
    return RosterValues(body.leader.name.strip(), leader_phone, staff, body.notes)


def invalid_numbers(errors: list[dict[str, Any]]) -> Problem:
    """The 422 problem for refused numbers (same shape as request validation errors)."""
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return Problem(422, "Invalid phone number", summary, kind="validation", errors=errors)


class ShiftOut(BaseModel):
    days: list[int]
    start: time | None
    end: time | None


class StaffOut(BaseModel):
    name: str
    phone: str
    order: int
    shift: ShiftOut | None


class PersonOut(BaseModel):
    name: str
    phone: str


class RosterVersionOut(BaseModel):
    """One stored submission."""

    unit_code: str
    week: str
    version: int
    leader: PersonOut
    staff: list[StaffOut]
    notes: str | None
    submitted_by: str
    submitted_at: datetime

    @classmethod
    def of(cls, r: RosterVersion) -> RosterVersionOut:
        return cls(
            unit_code=r.unit_code,
            week=r.week,
            version=r.version,
            leader=PersonOut(name=r.leader_name, phone=r.leader_phone),
            staff=[
                StaffOut(
                    name=s.name,
                    phone=s.phone,
                    order=s.order,
                    shift=ShiftOut(days=list(s.shift.days), start=s.shift.start, end=s.shift.end)
                    if s.shift
                    else None,
                )
                for s in r.staff
            ],
            notes=r.notes,
            submitted_by=r.submitted_by,
            submitted_at=r.submitted_at,
        )


class RosterWeekOut(BaseModel):
    """A week the unit reported for: the version that counts, who submitted it and when."""

    unit_code: str
    week: str
    version: int
    submitted_by: str
    submitted_at: datetime

    @classmethod
    def of(cls, r: RosterVersion) -> RosterWeekOut:
        return cls(
            unit_code=r.unit_code,
            week=r.week,
            version=r.version,
            submitted_by=r.submitted_by,
            submitted_at=r.submitted_at,
        )


class RosterOut(RosterVersionOut):
    """The version that counts; `history` (all versions, oldest first) when asked for."""

    history: list[RosterVersionOut] | None = None


class DialEntryOut(BaseModel):
    position: int
    number: str
    display: str
    role: str = Field(description="staff, leader or fallback")
    name: str
    order: int | None
    extension: str | None = Field(default=None, description="keyed in by DTMF after the answer")


class DialListOut(BaseModel):
    unit_code: str
    at: datetime
    week: str
    roster_version: int | None = Field(description="null: no roster this week, fallback only")
    entries: list[DialEntryOut]


class MissingOut(BaseModel):
    week: str
    units: list[UnitOut]


class DutyCheckOut(BaseModel):
    id: str
    unit_code: str
    week: str
    number: str
    person: str
    outcome: DutyCheckOutcome
    key_pressed: str | None
    detail: str | None
    started_at: datetime
    finished_at: datetime

    @classmethod
    def of(cls, d: DutyCheckRecord) -> DutyCheckOut:
        return cls(
            id=d.id,
            unit_code=d.unit_code,
            week=d.week,
            number=d.number,
            person=d.person,
            outcome=d.outcome,
            key_pressed=d.key_pressed,
            detail=d.detail,
            started_at=d.started_at,
            finished_at=d.finished_at,
        )


class DutyCheckUnitSummary(BaseModel):
    unit_code: str
    checks: int
    passed: int
    failed: int = Field(description="every outcome but pass: no answer, no key, busy, failed")


class PlannedDutyCheckOut(BaseModel):
    """A scheduled 查岗 (LINKCALL_DUTY_CHECK_SCHEDULE)."""

    id: str
    unit_code: str
    due_at: datetime
    rule: str
    status: str = Field(description="planned, calling, done, failed, missed")
    check_id: str | None
    detail: str | None


class DutyCheckReport(BaseModel):
    """Duty checks started in [from, to), newest first; per unit how many passed; the
    scheduled checks due in the period."""

    model_config = {"populate_by_name": True}

    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None
    unit: str | None = None
    checks: list[DutyCheckOut]
    summary: list[DutyCheckUnitSummary]
    planned: list[PlannedDutyCheckOut] = []


class DutyCheckScheduled(BaseModel):
    unit_code: str
    job_id: str


class NotificationOut(BaseModel):
    id: int
    kind: str
    unit_code: str
    week: str
    message: str
    created_at: datetime


class ImportRowError(BaseModel):
    row: int = Field(description="1-based row in the sheet, the header being row 1")
    field: str | None
    message: str


class ImportResult(BaseModel):
    imported: int = Field(description="roster versions stored")
    rosters: list[str] = Field(description="unit_code/week of each stored version")


class ReminderRequest(BaseModel):
    """Call the units without a roster for `week` now."""

    week: str = Field(examples=["2026-W50"], description="ISO week, e.g. 2026-W50")


class ReminderRunOut(BaseModel):
    """The reminder calls one request queued (units already being called are not repeated)."""

    id: str
    week: str
    units: list[str]


class ReminderAttemptOut(BaseModel):
    """One call placed for a reminder."""

    attempt_no: int
    outcome: str = Field(description="answer, no_key, no_answer, busy, failed")
    key: str | None
    digits: str
    sip_reason: str | None
    recording_id: str | None
    started_at: datetime
    ended_at: datetime


class ReminderUnitOut(BaseModel):
    """A unit's latest reminder call for the week."""

    unit_code: str
    number: str
    outcome: str = Field(
        description="pending, calling, acknowledged, not_acknowledged, no_answer, busy, failed"
    )
    run_id: str
    end_reason: str | None
    next_attempt_at: datetime | None
    attempts: list[ReminderAttemptOut]


class ReminderWeekOut(BaseModel):
    """Reminder calls about one week's missing rosters."""

    week: str
    units: list[ReminderUnitOut]
