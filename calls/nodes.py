"""This node's heartbeat, and ending the calls of a node that stopped heart-beating.

Every `heartbeat_s` the node writes its heartbeat row (storage/nodes.py) and looks for other
nodes silent for longer than `lease_s`. The first survivor to see one claims it (once, under a
row lock), ends its open calls `node_lost` in the database and on the event stream, and sends
BYE in every stored dialog of those calls (the crash rule of decision D14, applied by a
survivor), so no party stays in a call whose node is gone. Its unfinished recordings are sealed
by the survivor when their files are reachable from it (shared recordings storage,
calls/lost_recordings.py). A node that stops cleanly marks itself `stopped` and is never
declared lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from calls import lost_recordings
from calls.component import Health
from calls.manager import CallManager
from calls.restart import end_orphans
from storage import nodes as repo
from storage.base import utcnow
from storage.engine import session_scope

log = logging.getLogger(__name__)


class NodeWatch:
    """A service component: heartbeat and lost-node detection (see the module docstring)."""

    name = "node"

    def __init__(
        self,
        manager: CallManager,
        session_factory: sessionmaker[Session],
        *,
        node: str,
        url: str | None,
        heartbeat_s: float = 5.0,
        lease_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.manager = manager
        self.factory = session_factory
        self.node = node
        self.url = url
        self.heartbeat_s = heartbeat_s
        self.lease = timedelta(seconds=lease_s)
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._last_beat: datetime | None = None
        self._problem: str | None = None

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._loop(), name="node-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._in_session, repo.stopped, self.node, self.clock())

    def health(self) -> Health:
        if self._problem is not None:
            return Health(False, self._problem)
        beat = self._last_beat.isoformat(timespec="seconds") if self._last_beat else "not yet"
        return Health(True, f"node {self.node}, last heartbeat {beat}")

    def _in_session(self, fn: Callable[..., object], *args: object) -> object:
        with session_scope(self.factory) as session:
            return fn(session, *args)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self.beat()
                await self.check()
                self._problem = None
            except Exception as exc:  # the database may be briefly away: say so, try again
                log.exception("node heartbeat failed")
                self._problem = f"heartbeat failed: {type(exc).__name__}"

    async def beat(self) -> None:
        """Write this node's heartbeat."""
        now = self.clock()
        await asyncio.to_thread(self._in_session, repo.heartbeat, self.node, self.url, now)
        self._last_beat = now

    async def check(self) -> list[str]:
        """Declare silent nodes lost and end their calls; returns the nodes declared lost."""
        now = self.clock()
        lost = await asyncio.to_thread(self._claim, now)
        for name in lost:
            await self._take_over(name, now)
        return lost

    def _claim(self, now: datetime) -> list[str]:
        with session_scope(self.factory) as session:
            return repo.claim_lost(session, self.node, self.lease, now)

    async def _take_over(self, node: str, now: datetime) -> None:
        interrupted = await self.manager.records.mark_node_lost(node, now)
        log.error(
            "node %s lost (no heartbeat for %s s): %d call(s) ended node_lost, %d leg(s) to BYE",
            node, int(self.lease.total_seconds()), len(interrupted.call_ids),
            len(interrupted.orphans),
        )  # fmt: skip
        for call_id in interrupted.call_ids:
            self.manager.publish(
                "call.state",
                {"call_id": call_id, "state": "ended", "end_reason": "node_lost", "node": node},
            )
        await asyncio.gather(
            end_orphans(self.manager, interrupted.orphans),
            self._seal_recordings(node, interrupted.call_ids, now),
        )

    async def _seal_recordings(self, node: str, call_ids: list[str], now: datetime) -> None:
        """Seal the lost node's unfinished recordings whose files this node reaches (shared
        recordings storage); the others stay `interrupted` on its disk (calls/lost_recordings)."""
        if not call_ids:
            return
        records = self.manager.records
        for lost in await asyncio.to_thread(lost_recordings.unsealed, self.factory, call_ids):
            try:
                outcome = await asyncio.to_thread(
                    lost_recordings.finalise_lost, self.factory, records.recordings_root, lost,
                    lost_node=node, me=self.node, now=now,
                )  # fmt: skip
            except Exception:  # the database went away mid-way: the others still get a try
                log.exception("recording %s of lost node %s", lost.recording_id, node)
                continue
            log.warning("recording %s of lost node %s: %s", lost.recording_id, node, outcome)
            if outcome == "sealed":
                event = {"call_id": lost.call_id, "recording_id": lost.recording_id}
                self.manager.publish(
                    "recording.finished", {**event, "node": node, "sealed_by": self.node}
                )
