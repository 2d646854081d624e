"""Node heartbeats and leases: which nodes are alive, and claiming a silent one as lost.

Every node writes its heartbeat every few seconds. A node whose heartbeat is older than the
lease is declared lost by exactly one survivor: the claim locks the row (FOR UPDATE SKIP LOCKED
on PostgreSQL; SQLite has one writer anyway) and flips its state in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models.nodes import Node


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node as other nodes see it."""

    name: str
    url: str | None
    state: str
    heartbeat_at: datetime
    lost_at: datetime | None
    lost_by: str | None


def _info(row: Node) -> NodeInfo:
    return NodeInfo(row.name, row.url, row.state, row.heartbeat_at, row.lost_at, row.lost_by)


def heartbeat(session: Session, name: str, url: str | None, now: datetime) -> NodeInfo:
    """This node is alive (a node that was declared lost and comes back is up again)."""
    row = session.get(Node, name, with_for_update=True)
    if row is None:
        row = Node(name=name, url=url, started_at=now, heartbeat_at=now)
        session.add(row)
    else:
        if row.state != "up":
            row.started_at = now
        row.state, row.url, row.heartbeat_at = "up", url, now
        row.lost_at = row.lost_by = None
    session.flush()
    return _info(row)


def stopped(session: Session, name: str, now: datetime) -> None:
    """This node stopped cleanly (its calls were ended by itself)."""
    row = session.get(Node, name)
    if row is not None:
        row.state, row.heartbeat_at = "stopped", now


def claim_lost(session: Session, me: str, lease: timedelta, now: datetime) -> list[str]:
    """Declare every other node silent for longer than `lease` lost, by `me`; returns their
    names. A node is claimed once (its state is no longer `up`). Commit right after."""
    stmt = (
        select(Node)
        .where(Node.state == "up", Node.name != me, Node.heartbeat_at < now - lease)
        .with_for_update(skip_locked=True)
    )
    lost = []
    for row in session.scalars(stmt):
        row.state, row.lost_at, row.lost_by = "lost", now, me
        lost.append(row.name)
    session.flush()
    return lost


def list_nodes(session: Session) -> list[NodeInfo]:
    """Every node ever seen, by name."""
    return [_info(r) for r in session.scalars(select(Node).order_by(Node.name))]
