"""Repository for planned duty checks (the 查岗 schedule's rows): plan once per slot, claim
when due with a lease, finish with the stored check.

Planning and claiming are serialised by the shared lease helper (storage/claims.py, `PLANS`),
as the surveys' claims are: a slot is planned by one node only (whoever plans first; the others
see its rows), and a planned check is claimed with a lease by one node only. Rows outlive
restarts: a check planned before a restart is claimed after it, when due. A check found more
than `grace` after its time is `missed`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.claims import LeaseTable
from storage.models.registry import Unit
from storage.models.reminders import PlannedDutyCheck, PlanStatus
from storage.registry import unit_codes

log = logging.getLogger(__name__)

CLAIM_LOCK_KEY = 0x6C63_6463  # "lcdc"
PLANS = LeaseTable(
    PlannedDutyCheck, CLAIM_LOCK_KEY, "rule", waiting=PlanStatus.PLANNED,
    calling=PlanStatus.CALLING, due_column="due_at", kind="planned duty check",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PlannedCheck:
    """One planned 查岗."""

    id: str
    unit_code: str
    due_at: datetime
    rule: str
    status: PlanStatus
    check_id: str | None
    detail: str | None


def plan_slot(
    session: Session, *, due_at: datetime, rule: str, unit_codes: list[str], now: datetime
) -> list[PlannedCheck] | None:
    """Store one planned check per unit at `due_at`, unless the slot (`rule` at `due_at`) is
    planned already (then None). Use a fresh session: the lock must be its first statement."""
    PLANS.lock(session)
    exists = session.scalar(
        select(PlannedDutyCheck.id).where(
            PlannedDutyCheck.due_at == due_at, PlannedDutyCheck.rule == rule
        )
    )
    if exists is not None:
        return None
    found = session.execute(select(Unit.code, Unit.id).where(Unit.code.in_(unit_codes)))
    ids = {code: unit_id for code, unit_id in found}
    rows = [
        PlannedDutyCheck(
            unit_id=ids[code], due_at=due_at, rule=rule, status=PlanStatus.PLANNED, created_at=now
        )
        for code in unit_codes
        if code in ids
    ]
    session.add_all(rows)
    session.flush()
    log.info("planned %d duty check(s) at %s (%s)", len(rows), due_at.isoformat(), rule)
    codes = {v: k for k, v in ids.items()}
    return [_plan(r, codes[r.unit_id]) for r in rows]


def _plan(row: PlannedDutyCheck, code: str) -> PlannedCheck:
    return PlannedCheck(row.id, code, row.due_at, row.rule, row.status, row.check_id, row.detail)


def claim_due(
    session: Session, *, node: str, now: datetime, lease: timedelta, grace: timedelta, limit: int
) -> list[PlannedCheck]:
    """Mark checks more than `grace` late `missed`, then claim up to `limit` due ones."""
    if limit <= 0:
        return []
    PLANS.lock(session)
    session.execute(
        update(PlannedDutyCheck)
        .where(PlannedDutyCheck.status == PlanStatus.PLANNED, PlannedDutyCheck.due_at < now - grace)
        .values(status=PlanStatus.MISSED, detail="not placed within the grace time")
    )
    rows = PLANS.take_due(session, node=node, now=now, lease=lease, limit=limit)
    codes = unit_codes(session, {r.unit_id for r in rows})
    return [_plan(r, codes[r.unit_id]) for r in rows]


def renew_lease(session: Session, *, node: str, plan_id: str, until: datetime) -> bool:
    """Extend this node's lease while the check runs; False when lost."""
    return PLANS.renew(session, node=node, ids=[plan_id], until=until) > 0


def finish(
    session: Session,
    plan_id: str,
    *,
    status: PlanStatus,
    check_id: str | None = None,
    detail: str | None = None,
) -> None:
    """Store how the planned check ended (done with its check, or failed with a reason)."""
    row = PLANS.locked(session, plan_id)
    PLANS.release(row, status)
    row.check_id = check_id
    row.detail = (detail or "")[:200] or None
    session.flush()


def list_plans(
    session: Session,
    *,
    due_from: datetime | None = None,
    due_to: datetime | None = None,
    unit_code: str | None = None,
) -> list[PlannedCheck]:
    """Planned checks by due time; `due_to` exclusive."""
    stmt = select(PlannedDutyCheck, Unit.code).join(Unit, Unit.id == PlannedDutyCheck.unit_id)
    if due_from is not None:
        stmt = stmt.where(PlannedDutyCheck.due_at >= due_from)
    if due_to is not None:
        stmt = stmt.where(PlannedDutyCheck.due_at < due_to)
    if unit_code is not None:
        stmt = stmt.where(Unit.code == unit_code)
    stmt = stmt.order_by(PlannedDutyCheck.due_at, Unit.code)
    return [_plan(r, c) for r, c in session.execute(stmt)]
