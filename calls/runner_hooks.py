"""What a flow runner reports to the rest of the service (persistence, events, recordings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from callflows import commands as c
from recordings import RecordingInfo


class RunnerHooks(Protocol):
    """Where the runner reports what the rest of the service stores and shows."""

    def on_save(self, snapshot: object) -> None: ...

    def on_notify(self, note: c.Notify) -> None: ...

    def on_leg(self, leg_id: str, role: str, sip_call_id: str) -> None: ...

    def on_dialog(self, leg_id: str, role: str, state: dict[str, Any]) -> None: ...

    def on_recording_started(self, recording_id: str, directory: Path) -> None: ...

    def on_recording_finished(
        self, recording_id: str, info: RecordingInfo | None, error: str | None
    ) -> None: ...


class NullHooks:
    """Hooks that keep nothing (tests of the runner alone)."""

    def on_save(self, snapshot: object) -> None:
        return None

    def on_notify(self, note: c.Notify) -> None:
        return None

    def on_leg(self, leg_id: str, role: str, sip_call_id: str) -> None:
        return None

    def on_dialog(self, leg_id: str, role: str, state: dict[str, Any]) -> None:
        return None

    def on_recording_started(self, recording_id: str, directory: Path) -> None:
        return None

    def on_recording_finished(
        self, recording_id: str, info: RecordingInfo | None, error: str | None
    ) -> None:
        return None
