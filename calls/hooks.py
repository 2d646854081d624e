"""Runner hooks: what each kind of call stores and publishes.

Every hook runs on the event loop and must be quick: database writes are queued to the call
records' writer thread (`CallRecords.queue_*`), events go to the injected `publish` callable.
A hook knows the call's id, the records and `publish`; nothing of the call manager.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from callflows import commands as c
from callflows.bridge import BridgeSnapshot
from callflows.inbound import InboundSnapshot
from callflows.ivr import KeyPromptResult
from calls.records import CallRecords
from calls.stats import AttemptTally, CallStats
from recordings import RecordingInfo
from storage.models.call_records import CallKind

Publish = Callable[[str, dict[str, Any]], object]
"""Publish one event (type, JSON-ready data) to the live event stream; never blocks."""


class CallHooks:
    """Runner hooks every kind of call shares: notes, SIP Call-IDs, recordings."""

    kind = "call"

    def __init__(
        self,
        records: CallRecords,
        publish: Publish,
        call_id: str,
        *,
        stats: CallStats | None = None,
    ) -> None:
        self.records = records
        self.publish = publish
        self.call_id = call_id
        self.tally = AttemptTally(stats)

    def on_save(self, snapshot: object) -> None:
        """Store the flow's snapshot; each kind of call overrides this."""
        raise TypeError(f"{type(self).__name__} stores no snapshot {type(snapshot).__name__}")

    def on_notify(self, note: c.Notify) -> None:
        self.publish(
            "call.note",
            {
                "call_id": self.call_id,
                "topic": note.topic,
                "role": note.role,
                "detail": note.detail,
            },
        )

    def on_leg(self, leg_id: str, role: str, sip_call_id: str) -> None:
        self.records.queue_sip_call_id(self.call_id, role, sip_call_id)

    def on_dialog(self, leg_id: str, role: str, state: dict[str, Any]) -> None:
        self.records.queue_dialog(self.call_id, role, state)

    def on_recording_started(self, recording_id: str, directory: Path) -> None:
        self.records.queue_recording_started(self.call_id, recording_id, directory)
        self.publish("recording.started", {"call_id": self.call_id, "recording_id": recording_id})

    def on_recording_finished(
        self, recording_id: str, info: RecordingInfo | None, error: str | None
    ) -> None:
        self.records.queue_recording_finished(recording_id, info, error)
        stats = self.tally.stats
        if stats is not None:
            if info is None:
                stats.recording_problems["recording_failed"] += 1
            elif info.lost_s > 0:
                stats.recording_problems["audio_lost"] += 1
        self.publish(
            "recording.finished",
            {
                "call_id": self.call_id,
                "recording_id": recording_id,
                "sha256": info.manifest_sha256 if info else None,
                "error": error,
            },
        )


class BridgeHooks(CallHooks):
    """Runner hooks of one bridge: persist its snapshot, publish state changes."""

    kind = "bridge"

    def __init__(
        self,
        records: CallRecords,
        publish: Publish,
        call_id: str,
        labels: dict[str, str],
        *,
        stats: CallStats | None = None,
    ) -> None:
        super().__init__(records, publish, call_id, stats=stats)
        self.labels = labels
        self._last: BridgeSnapshot | None = None

    def on_save(self, snapshot: object) -> None:
        assert isinstance(snapshot, BridgeSnapshot)
        self.records.queue_bridge_snapshot(self.call_id, snapshot, self.labels)
        for party in snapshot.parties:
            self.tally.update(party.role.value, party.attempts)
        self._publish_changes(snapshot)
        self._last = snapshot

    def _publish_changes(self, snap: BridgeSnapshot) -> None:
        if self._last is None or self._last.state is not snap.state:
            self.publish(
                "call.state",
                {
                    "call_id": self.call_id,
                    "kind": self.kind,
                    "state": snap.state.value,
                    "end_reason": snap.end_reason,
                },
            )
        before = {p.role: p for p in self._last.parties} if self._last else {}
        for party in snap.parties:
            old = before.get(party.role)
            seen = (old.state, old.muted, old.held, len(old.attempts)) if old else None
            if seen != (party.state, party.muted, party.held, len(party.attempts)):
                self.publish(
                    "leg.state",
                    {
                        "call_id": self.call_id,
                        "role": party.role.value,
                        "state": party.state.value,
                        "muted": party.muted,
                        "held": party.held,
                        "attempts": len(party.attempts),
                        "end_reason": party.end_reason,
                    },
                )


class InboundHooks(BridgeHooks):
    """An inbound call: seat-ringing snapshots first, bridge snapshots once a unit is added."""

    kind = "inbound"

    def __init__(
        self,
        records: CallRecords,
        publish: Publish,
        call_id: str,
        *,
        stats: CallStats | None = None,
    ) -> None:
        super().__init__(records, publish, call_id, {}, stats=stats)
        self._inbound_state: str | None = None

    def on_save(self, snapshot: object) -> None:
        if isinstance(snapshot, BridgeSnapshot):
            self.kind = "bridge"
            super().on_save(snapshot)
            return
        assert isinstance(snapshot, InboundSnapshot)
        self.records.queue_inbound_snapshot(self.call_id, snapshot)
        self.tally.update("dispatcher", snapshot.seat_attempts)
        if snapshot.state.value != self._inbound_state:
            self._inbound_state = snapshot.state.value
            self.publish(
                "call.state",
                {
                    "call_id": self.call_id,
                    "kind": "inbound",
                    "state": snapshot.state.value,
                    "end_reason": snapshot.end_reason,
                },
            )


class IvrHooks(CallHooks):
    """Runner hooks of a prompt-and-key call (survey, duty check): keep its result."""

    def __init__(
        self,
        records: CallRecords,
        publish: Publish,
        call_id: str,
        kind: CallKind,
        *,
        stats: CallStats | None = None,
    ) -> None:
        super().__init__(records, publish, call_id, stats=stats)
        self.kind = kind.value
        self.result: KeyPromptResult | None = None

    def on_save(self, snapshot: object) -> None:
        assert isinstance(snapshot, KeyPromptResult)
        self.records.queue_key_prompt(self.call_id, snapshot)
        if snapshot.attempt is not None:
            self.tally.update("callee", (snapshot.attempt,))
        if self.result is None or self.result.state is not snapshot.state:
            self.publish(
                "call.state",
                {
                    "call_id": self.call_id,
                    "kind": self.kind,
                    "state": snapshot.state.value,
                    "end_reason": snapshot.outcome.value if snapshot.outcome else None,
                },
            )
        self.result = snapshot
