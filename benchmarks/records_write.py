"""The call records' writer's own cost per bridge, without SIP, media or the network (issue 17).

    .venv/bin/python benchmarks/records_write.py --calls 200 --concurrent 10 \\
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--no-sqlite] \
        [--profile]

Replays what the hooks of a three-way bridge queue to `CallRecords` (calls/hooks.py), for N
bridges, `--concurrent` of them at a time: the dispatcher dialled (snapshot, SIP Call-ID),
ringing (its pending INVITE, a snapshot), answered (its dialog, a snapshot with the caller and
the unit dialled), their Call-IDs, ringing and answers, the recording started, the call ended
and the recording finished. Each step is queued for every bridge of the wave, then awaited
(`flushed`), so each step of a wave is one batch of `--concurrent` writes, as at ~10 bridges/s.

Printed per backend: the writer thread's CPU time per bridge (`time.thread_time` read inside
the writer thread before and after), the whole process's CPU per bridge, SQL statements
(`executemany` counted once) and commits per bridge, and a SHA-256 of every row written
(ids left out, calls numbered in order), so two versions of the writer can be checked to
write the same rows. The calls are inserted beforehand (that is the API thread's work) and
not counted.

`--profile` prints a cProfile of the writer thread (CPU time). PostgreSQL: a fresh database per
run (`CREATE DATABASE`, dropped at the end). Nothing here runs in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import logging
import pstats
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, event, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from callflows.bridge import BridgeSnapshot, BridgeState  # noqa: E402
from callflows.bridge_party import PartySnapshot, PartyState  # noqa: E402
from callflows.dialing import Attempt  # noqa: E402
from callflows.events import Role  # noqa: E402
from calls.records import CallRecords, NewCall  # noqa: E402
from recordings import RecordingInfo  # noqa: E402
from recordings.info import TrackInfo  # noqa: E402
from storage import migrate  # noqa: E402
from storage.engine import make_engine, make_session_factory  # noqa: E402
from storage.models.call_records import Attempt as AttemptRow  # noqa: E402
from storage.models.call_records import Call, CallKind, Leg, Recording  # noqa: E402

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
ROLES = (Role.DISPATCHER, Role.CALLER, Role.UNIT)
NUMBERS = {Role.DISPATCHER: "8001", Role.CALLER: "13800138000", Role.UNIT: "4001"}


@dataclass
class _Party:
    state: PartyState = PartyState.WAITING
    attempts: list[Attempt] = field(default_factory=list)
    connected_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None


class _Bridge:
    """A bridge's state as its flow would snapshot it, moved along by hand."""

    def __init__(self, call_id: str, index: int) -> None:
        self.call_id, self.index = call_id, index
        self.parties = {role: _Party() for role in ROLES}
        self.state, self.connected_at, self.ended_at = BridgeState.DIALING, None, None
        self.end_reason: str | None = None
        self.recording = False

    def at(self, seconds: float) -> datetime:
        return T0 + timedelta(seconds=self.index * 0.1 + seconds)

    def leg_id(self, role: Role) -> str:
        return f"b{self.index}-{role.value}-1"

    def dial(self, role: Role, t: float) -> None:
        party = self.parties[role]
        party.state = PartyState.DIALING
        party.attempts.append(Attempt(NUMBERS[role], self.leg_id(role), self.at(t)))

    def ring(self, role: Role) -> None:
        party = self.parties[role]
        party.attempts[-1] = replace(party.attempts[-1], rang=True)

    def answer(self, role: Role, t: float) -> None:
        party = self.parties[role]
        party.state, party.connected_at = PartyState.CONNECTED, self.at(t)
        party.attempts[-1] = replace(party.attempts[-1], result="answered", sip_status=200)
        if all(p.state is PartyState.CONNECTED for p in self.parties.values()):
            self.state, self.connected_at = BridgeState.CONNECTED, self.at(t)

    def end(self, t: float) -> None:
        for party in self.parties.values():
            party.state, party.ended_at, party.end_reason = PartyState.LEFT, self.at(t), "hangup"
            party.attempts[-1] = replace(party.attempts[-1], ended_at=self.at(t))
        self.state, self.ended_at, self.end_reason = BridgeState.ENDED, self.at(t), "hangup"

    def snapshot(self) -> BridgeSnapshot:
        parties = tuple(
            PartySnapshot(role, p.state, NUMBERS[role], self.leg_id(role), False, False,
                          tuple(p.attempts), p.connected_at, p.ended_at, p.end_reason)
            for role, p in self.parties.items()
        )  # fmt: skip
        return BridgeSnapshot(self.call_id, self.state, parties, T0, self.connected_at,
                              self.ended_at, self.end_reason, self.recording)  # fmt: skip


def _dialog(b: _Bridge, role: Role, pending: bool) -> dict[str, Any]:
    """A dialog state of the size `Dialog.to_state` gives (a pending INVITE while ringing)."""
    state: dict[str, Any] = {
        "call_id": f"{b.leg_id(role)}@127.0.0.1",
        "local_tag": f"{b.index:08x}",
        "remote_tag": None if pending else f"{b.index:08x}r",
        "local_uri": "sip:110@127.0.0.1",
        "remote_uri": f"sip:{NUMBERS[role]}@127.0.0.1",
        "remote_target": f"sip:{NUMBERS[role]}@127.0.0.1:5080",
        "route_set": ["<sip:127.0.0.1:5070;lr>"],
        "local_cseq": 2,
        "remote_cseq": None,
    }
    if pending:
        state["pending_invite"] = {"cancel": "CANCEL sip:... SIP/2.0\r\n" * 4, "dest": []}
    return state


def _recording_info(b: _Bridge, rid: str, root: Path) -> RecordingInfo:
    tracks = {
        role: TrackInfo(role, root / rid / f"{role}.wav", "ab" * 32, 160_044, 80_000, 9000, 2000.0)
        for role in ("mixed", "caller", "dispatcher", "unit")
    }
    return RecordingInfo(rid, root / rid, tracks, 10.0, b.at(4), b.at(14), False, "cd" * 32)


def _steps(records: CallRecords, root: Path) -> list[Any]:
    """Each step: one bridge's writes at one moment of its life."""
    d, c, u = ROLES

    def dial_dispatcher(b: _Bridge) -> None:
        b.dial(d, 0.0)
        records.queue_bridge_snapshot(b.call_id, b.snapshot(), {})
        records.queue_sip_call_id(b.call_id, d.value, f"{b.leg_id(d)}@127.0.0.1")

    def ring(*roles: Role) -> Any:
        def step(b: _Bridge) -> None:
            for role in roles:
                b.ring(role)
                records.queue_dialog(b.call_id, role.value, _dialog(b, role, True))
            records.queue_bridge_snapshot(b.call_id, b.snapshot(), {})

        return step

    def answer(role: Role, t: float) -> Any:
        def step(b: _Bridge) -> None:
            b.answer(role, t)
            records.queue_dialog(b.call_id, role.value, _dialog(b, role, False))
            if role is d:
                b.dial(c, t)
                b.dial(u, t)
            records.queue_bridge_snapshot(b.call_id, b.snapshot(), {"4001": "值班员 duty staff"})
            if role is d:
                for other in (c, u):
                    records.queue_sip_call_id(b.call_id, other.value, f"{b.leg_id(other)}@x")

        return step

    def record(b: _Bridge) -> None:
        b.recording = True
        directory = root / "2026" / "12" / "06" / b.call_id
        records.queue_recording_started(b.call_id, f"{b.call_id}-1", directory)
        records.queue_bridge_snapshot(b.call_id, b.snapshot(), {})

    def end(b: _Bridge) -> None:
        b.end(14.0)
        records.queue_bridge_snapshot(b.call_id, b.snapshot(), {})

    def finish(b: _Bridge) -> None:
        rid = f"{b.call_id}-1"
        records.queue_recording_finished(rid, _recording_info(b, rid, root), None)

    return [dial_dispatcher, ring(d), answer(d, 1.0), ring(c, u), answer(c, 2.5), answer(u, 3.0),
            record, end, finish]  # fmt: skip


@dataclass
class _Counts:
    statements: int = 0
    commits: int = 0


def _count(engine: Engine) -> _Counts:
    counts = _Counts()

    def on_execute(*_: Any) -> None:
        counts.statements += 1

    def on_commit(*_: Any) -> None:
        counts.commits += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    return counts


def _rows_digest(engine: Engine, order: list[str], root: Path) -> str:
    """SHA-256 of every call, leg, attempt and recording row, ids left out."""
    index = {call_id: i for i, call_id in enumerate(order)}
    factory = make_session_factory(engine)
    out: list[Any] = []
    skip = {"id", "created_at", "started_at", "finalised_at"}  # ids, times taken from the clock
    with factory() as s:
        for model in (Call, Leg, AttemptRow, Recording):
            rows = []
            for row in s.scalars(select(model)):
                values = {
                    k: (str(v) if not isinstance(v, (dict, list)) else v)
                    for k, v in vars(row).items()
                    if not k.startswith("_") and k not in skip
                }
                call_id = row.id if model is Call else row.call_id
                values["call_id"] = index[call_id]
                if model is Recording:
                    values["directory"] = values["directory"].replace(call_id, "")
                    values["health"] = row.health
                line = json.dumps(values, sort_keys=True, default=str, ensure_ascii=False)
                rows.append(line.replace(call_id, "C").replace(str(root), "ROOT"))
            out.append(sorted(rows))
    return hashlib.sha256(json.dumps(out).encode()).hexdigest()[:16]


async def _replay(url: str, calls: int, concurrent: int, profile: bool) -> dict[str, Any]:
    migrate.upgrade(url)
    engine = make_engine(url)
    root = Path(tempfile.mkdtemp(prefix="records-write-"))
    records = CallRecords(make_session_factory(engine), root)
    parties = tuple((r.value, NUMBERS[r]) for r in (Role.CALLER, Role.DISPATCHER, Role.UNIT))
    bridges = [
        _Bridge(records.insert_now(NewCall(CallKind.BRIDGE, "disp", "node-a", parties=parties)), i)
        for i in range(calls)
    ]
    steps = _steps(records, root)
    await records.flushed()
    counts = _count(engine)
    prof = cProfile.Profile(time.thread_time) if profile else None  # CPU, not wall
    if prof is not None:
        await records.writer.run(prof.enable)  # the writer thread only
    writer_t0 = await records.writer.run(time.thread_time)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, calls, concurrent):
        wave = bridges[start : start + concurrent]
        for step in steps:
            for b in wave:
                step(b)
            await records.flushed()
    writer_cpu = await records.writer.run(time.thread_time) - writer_t0
    if prof is not None:
        await records.writer.run(prof.disable)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    result = {
        "writer_ms": 1000 * writer_cpu / calls,
        "process_ms": 1000 * cpu / calls,
        "wall_ms": 1000 * wall / calls,
        "statements": counts.statements / calls,
        "commits": counts.commits / calls,
        "batches": records.writer.batches,
    }
    await records.close(10)
    result["rows"] = _rows_digest(engine, [b.call_id for b in bridges], root)
    engine.dispose()
    return result


def _postgres_db(admin_url: str) -> tuple[str, Any]:
    name = f"records_write_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--concurrent", type=int, default=10, help="bridges per wave (batch size)")
    ap.add_argument("--postgres", help="an admin URL; a fresh database is made and dropped")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile the writer thread")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("recordings.health").setLevel(logging.ERROR)  # no WAV files here
    results: list[tuple[str, dict[str, Any]]] = []
    replay = (args.calls, args.concurrent, args.profile)
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/records.sqlite3"
            results.append(("SQLite", asyncio.run(_replay(url, *replay))))
    if args.postgres:
        url, drop = _postgres_db(args.postgres)
        try:
            results.append(("PostgreSQL", asyncio.run(_replay(url, *replay))))
        finally:
            drop()
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    print(f"{args.calls} bridges, {args.concurrent} at a time; load average {' '.join(load)}")
    print("| backend | writer CPU ms/bridge | process CPU ms/bridge | wall ms/bridge "
          "| statements/bridge | commits/bridge | batches | rows |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results:
        ms = [f"{r[k]:.2f}" for k in ("writer_ms", "process_ms", "wall_ms")]
        per = [f"{r[k]:.1f}" for k in ("statements", "commits")]
        print(f"| {name} | " + " | ".join([*ms, *per, str(r["batches"]), r["rows"]]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
