"""The call records' rows as the writer thread last wrote them, and the statements that bring
them to a call's new state (issue 17).

The writer used to load every call of a batch with its legs and attempts through the ORM (three
queries and the hydration of every row, on every batch) and let the unit of work find what had
changed: about 10 ms of CPU per bridge, under the GIL, in the service's busiest seconds. Now
`CallRows` keeps, per call in flight, the values of the columns that the call flows' snapshots
own (`CALL_COLUMNS`, `LEG_COLUMNS`, `ATTEMPT_COLUMNS`) as last written, the leg roles and the
attempt keys that exist; a new state is written as its differences only, with SQLAlchemy Core:
an UPDATE of the changed columns of a changed row (a leg by (call_id, role), an attempt by
(call_id, leg_key)), an INSERT for a new row, nothing for what did not change, and no SELECT.

What keeps the cache true to the database:
- a call it does not know is read first, in the write's own transaction (three small SELECTs):
  the first write to a call after a start, or after the call was forgotten; a call inserted by
  this process (`CallRecords.insert`, `insert_now`) is known from what was inserted;
- it changes with the statements it stages (run at the next `flush`, in the same transaction);
  a batch that fails drops what it staged and forgets every call it touched (the rollback undid
  what the cache holds of them);
- a write that changes a call's rows another way (`become_bridge`, crash recovery, a
  `queue_write`) forgets the call: its next write reads it again;
- a call is forgotten after its last snapshot (ended or failed);
- columns no snapshot owns (`sip_call_id`, `dialog`, `recovery`, `interrupted`, `kind`, ...)
  are set by their own statements and never carried in a snapshot's UPDATE, so what other
  sessions write there is never overwritten; and a snapshot's UPDATE carries only the columns
  whose value changed, so it does not put back an unchanged column another session changed.

Only the writer thread uses a `CallRows`, except `seed` (any thread: the API's worker threads
insert bridges).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from storage.models.call_records import Attempt, Call, CallKind, CallState, Leg, Recording

CALL_COLUMNS = ("state", "connected_at", "ended_at", "end_reason")
LEG_COLUMNS = ("number", "state", "muted", "held", "connected_at", "ended_at", "end_reason")
ATTEMPT_COLUMNS = (
    "result", "sip_status", "ended_at", "extension", "extension_sent_at", "confirmed_at"
)  # fmt: skip

MAX_KNOWN = 10_000  # calls remembered; far more than a node carries at once
MAX_SEEDS = 10_000  # calls inserted and not written to yet (a bridge that never started)

# what a new row holds in the columns a write did not name (the models' defaults)
_LEG_DEFAULTS: dict[str, Any] = dict.fromkeys(LEG_COLUMNS) | {"muted": False, "held": False}
_ATTEMPT_DEFAULTS: dict[str, Any] = dict.fromkeys(ATTEMPT_COLUMNS)

_calls = cast(Table, Call.__table__)
_legs = cast(Table, Leg.__table__)
_attempts = cast(Table, Attempt.__table__)
_recordings = cast(Table, Recording.__table__)

# the SET clause is the columns named in each execution's parameters
_UPDATE_CALL = update(_calls).where(_calls.c.id == bindparam("w_id"))
_UPDATE_LEG = update(_legs).where(
    _legs.c.call_id == bindparam("w_call_id"), _legs.c.role == bindparam("w_role")
)
_UPDATE_ATTEMPT = update(_attempts).where(
    _attempts.c.call_id == bindparam("w_call_id"), _attempts.c.leg_key == bindparam("w_key")
)
_INSERT_LEG = insert(_legs)
_INSERT_ATTEMPT = insert(_attempts)
_STATEMENTS = {
    "update call": _UPDATE_CALL,
    "insert leg": _INSERT_LEG,
    "update leg": _UPDATE_LEG,
    "insert attempt": _INSERT_ATTEMPT,
    "update attempt": _UPDATE_ATTEMPT,
}
_SELECT_CALL = select(_calls.c.kind, *(_calls.c[c] for c in CALL_COLUMNS)).where(
    _calls.c.id == bindparam("w_id")
)
_SELECT_LEGS = (
    select(_legs.c.role, *(_legs.c[c] for c in LEG_COLUMNS))
    .where(_legs.c.call_id == bindparam("w_id"))
    .order_by(_legs.c.id)
)
_SELECT_ATTEMPTS = (
    select(_attempts.c.leg_key, *(_attempts.c[c] for c in ATTEMPT_COLUMNS))
    .where(_attempts.c.call_id == bindparam("w_id"))
    .order_by(_attempts.c.id)
)


@dataclass(slots=True)
class KnownCall:
    """One call's rows as last written or read: the call's columns, its legs by role (in the
    order of their ids) and its attempts by leg key."""

    kind: CallKind
    call: dict[str, Any]
    legs: dict[str, dict[str, Any]]
    attempts: dict[str, dict[str, Any]]


class CallRows:
    """The writer thread's view of the calls in flight, and the statements that change them.

    Statements are staged, not run at once: at `flush` (before a read, an ORM write and the
    commit), each group of one statement setting the same columns runs as one executemany, so
    the ten legs that change in a busy batch cost one round trip, not ten."""

    def __init__(self) -> None:
        self._known: dict[str, KnownCall] = {}
        # calls just inserted (by any thread): their rows as committed, taken by `of`
        self._seeds: dict[str, KnownCall] = {}
        self._seeds_lock = threading.Lock()
        # statements not run yet, grouped by statement and the columns they set, in the order
        # of their first row; and the groups each row has a statement in
        self._staged: dict[tuple[str, frozenset[str]], list[dict[str, Any]]] = {}
        self._staged_rows: dict[tuple[str, ...], list[tuple[str, frozenset[str]]]] = {}

    def __len__(self) -> int:
        return len(self._known)

    @property
    def pending(self) -> bool:
        """Whether statements wait to be run (`flush`)."""
        return bool(self._staged)

    def seed(self, call_id: str, kind: CallKind, parties: Iterable[tuple[str, str | None]]) -> None:
        """A call was just inserted and committed (in any thread) with these (role, number)
        legs, `waiting`: its first write needs not read it."""
        legs = {role: _LEG_DEFAULTS | {"number": number, "state": "waiting"}
                for role, number in parties}  # fmt: skip
        call = dict.fromkeys(CALL_COLUMNS) | {"state": CallState.DIALING}
        with self._seeds_lock:
            if len(self._seeds) >= MAX_SEEDS:  # calls never written to: drop the oldest
                del self._seeds[next(iter(self._seeds))]
            self._seeds[call_id] = KnownCall(kind, call, legs, {})

    def forget(self, call_ids: Iterable[str | None]) -> None:
        """These calls' rows may have changed otherwise: read them again before writing."""
        with self._seeds_lock:
            for call_id in call_ids:
                if call_id is not None:
                    self._known.pop(call_id, None)
                    self._seeds.pop(call_id, None)

    def forget_all(self) -> None:
        with self._seeds_lock:
            self._known.clear()
            self._seeds.clear()

    def rolled_back(self, call_ids: Iterable[str | None]) -> None:
        """The transaction failed: drop its statements and forget the calls it touched."""
        self._staged, self._staged_rows = {}, {}
        self.forget(call_ids)

    def flush(self, conn: Connection) -> None:
        """Run the staged statements, each group as one executemany, in the order staged."""
        staged = self._staged
        self._staged, self._staged_rows = {}, {}
        for (stmt, _), params in staged.items():
            conn.execute(_STATEMENTS[stmt], params if len(params) > 1 else params[0])

    def _stage(
        self, conn: Connection, stmt: str, params: dict[str, Any], row: tuple[str, ...]
    ) -> None:
        """Run `stmt` with `params` at the next flush. Statements on one row may run in another
        order than staged only when they commute (UPDATEs of different columns: a snapshot's
        and a Call-ID's); otherwise (an INSERT, then an UPDATE; two UPDATEs of one column in
        two groups) the staged ones run first."""
        group = (stmt, frozenset(params))
        before = self._staged_rows.setdefault(row, [])
        if group not in before and any(not _commute(group, other) for other in before):
            self.flush(conn)
            before = self._staged_rows.setdefault(row, [])
        if group not in before:
            before.append(group)
        self._staged.setdefault(group, []).append(params)

    def of(self, conn: Connection, call_id: str) -> KnownCall | None:
        """The call as known, read from the database when it is not; None if there is none."""
        known = self._known.get(call_id)
        if known is not None:
            return known
        with self._seeds_lock:
            known = self._seeds.pop(call_id, None)
        if known is not None:
            self._remember(call_id, known)
            return known
        self.flush(conn)  # what is read includes what was written before
        row = conn.execute(_SELECT_CALL, {"w_id": call_id}).first()
        if row is None:
            return None
        legs = {r[0]: dict(zip(LEG_COLUMNS, r[1:], strict=True))
                for r in conn.execute(_SELECT_LEGS, {"w_id": call_id})}  # fmt: skip
        attempts = {r[0]: dict(zip(ATTEMPT_COLUMNS, r[1:], strict=True))
                    for r in conn.execute(_SELECT_ATTEMPTS, {"w_id": call_id})}  # fmt: skip
        call = dict(zip(CALL_COLUMNS, row[1:], strict=True))
        known = KnownCall(row[0], call, legs, attempts)
        self._remember(call_id, known)
        return known

    def _remember(self, call_id: str, known: KnownCall) -> None:
        if len(self._known) >= MAX_KNOWN:  # calls that never ended (a flow that died): forget
            del self._known[next(iter(self._known))]  # the oldest; it is read again if need be
        self._known[call_id] = known

    def put_call(
        self, conn: Connection, call_id: str, known: KnownCall, values: Mapping[str, Any]
    ) -> None:
        """The call's columns to `values`: an UPDATE of those that differ, if any."""
        changed = _changed(known.call, values)
        if changed:
            self._stage(conn, "update call", {"w_id": call_id, **changed}, ("call", call_id))
            known.call.update(changed)

    def put_leg(
        self,
        conn: Connection,
        call_id: str,
        known: KnownCall,
        role: str,
        values: Mapping[str, Any],
    ) -> None:
        """The leg of `role` to `values` (snapshot columns): made when missing."""
        row = ("leg", call_id, role)
        old = known.legs.get(role)
        if old is None:
            self._stage(conn, "insert leg", {"call_id": call_id, "role": role, **values}, row)
            known.legs[role] = _LEG_DEFAULTS | dict(values)
            return
        changed = _changed(old, values)
        if changed:
            self._stage(conn, "update leg", {"w_call_id": call_id, "w_role": role, **changed}, row)
            old.update(changed)

    def put_attempt(
        self,
        conn: Connection,
        call_id: str,
        known: KnownCall,
        key: str,
        values: Mapping[str, Any],
        new: Mapping[str, Any],
    ) -> None:
        """The attempt `key` to `values`; made from `new` and `values` when missing."""
        row = ("attempt", call_id, key)
        old = known.attempts.get(key)
        if old is None:
            params = {"call_id": call_id, "leg_key": key, **new, **values}
            self._stage(conn, "insert attempt", params, row)
            known.attempts[key] = _ATTEMPT_DEFAULTS | dict(values)
            return
        changed = _changed(old, values)
        if changed:
            params = {"w_call_id": call_id, "w_key": key, **changed}
            self._stage(conn, "update attempt", params, row)
            old.update(changed)

    def set_on_leg(
        self,
        conn: Connection,
        call_id: str,
        role: str,
        values: Mapping[str, Any],
        *,
        only_leg: bool = False,
    ) -> None:
        """Columns no snapshot owns (`sip_call_id`, `dialog`) on the leg of `role`. A bridge's
        leg is made (`dialing`) when missing: an added unit's first dial can be written before
        the snapshot that names it, and its Call-ID and dialog must not be lost. With
        `only_leg`, a call of one leg (survey, duty check) has them on that leg, whatever its
        role is called."""
        known = self.of(conn, call_id)
        if known is None:
            return
        if only_leg and len(known.legs) == 1:
            role = next(iter(known.legs))
        elif role not in known.legs:
            if known.kind is not CallKind.BRIDGE:
                return
            self.put_leg(conn, call_id, known, role, {"state": "dialing", **values})
            known.legs[role] = _LEG_DEFAULTS | {"state": "dialing"}
            return
        params = {"w_call_id": call_id, "w_role": role, **values}
        self._stage(conn, "update leg", params, ("leg", call_id, role))

    def set_recovery(self, conn: Connection, call_id: str, role: str, result: str) -> None:
        """What happened to an orphaned leg's dialog (no snapshot owns `recovery`)."""
        params = {"w_call_id": call_id, "w_role": role, "recovery": result[:60]}
        self._stage(conn, "update leg", params, ("leg", call_id, role))


_INSERT_RECORDING = insert(_recordings).values(
    segment=select(func.count())
    .select_from(_recordings)
    .where(_recordings.c.call_id == bindparam("w_call_id"))
    .scalar_subquery()
    + 1
)


def insert_recording(conn: Connection, call_id: str, recording_id: str, directory: str) -> None:
    """A recording's row, numbered after the call's segments so far, in one statement (run at
    once: it touches no row the staged statements do)."""
    params = {"id": recording_id, "call_id": call_id, "w_call_id": call_id, "directory": directory}
    conn.execute(_INSERT_RECORDING, params)


_WHERE = frozenset(("w_id", "w_call_id", "w_role", "w_key"))


def _commute(a: tuple[str, frozenset[str]], b: tuple[str, frozenset[str]]) -> bool:
    """Two statements on one row give the same row in either order: UPDATEs of disjoint
    columns."""
    if a[0].startswith("insert") or b[0].startswith("insert"):
        return False
    return not (a[1] & b[1]) - _WHERE


def _changed(old: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if old.get(k) != v}


_SELECT_RECORDING = (
    select(
        _recordings.c.segment,
        _calls.c.connected_at,
        _calls.c.ended_at,
        _calls.c.resumed_at,
    )
    .join_from(_recordings, _calls, _recordings.c.call_id == _calls.c.id)
    .where(_recordings.c.id == bindparam("w_id"))
)
_UPDATE_RECORDING = update(_recordings).where(_recordings.c.id == bindparam("w_id"))


@dataclass(frozen=True, slots=True)
class FinishedRecording:
    """What storing a finished recording needs of its row and its call."""

    segment: int
    connected_at: datetime | None
    ended_at: datetime | None
    resumed_at: datetime | None


def recording_of(conn: Connection, recording_id: str) -> FinishedRecording | None:
    """The recording's segment number and its call's times (one SELECT); None without a row."""
    row = conn.execute(_SELECT_RECORDING, {"w_id": recording_id}).first()
    return None if row is None else FinishedRecording(*row)


def update_recording(conn: Connection, recording_id: str, values: Mapping[str, Any]) -> None:
    """Set the recording's columns to `values` (run at once: no staged statement touches it)."""
    conn.execute(_UPDATE_RECORDING, {"w_id": recording_id, **values})
