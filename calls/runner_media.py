"""The flow runner's media side (calls/runner.py): one flow's conferences on the media engine,
its prompts played to a leg, and the call's recording (a tap on a conference, in process, or a
recorder beside the call's media worker), reported to the runner's hooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callflows import commands as c
from calls.media_workers.remote import RemoteConference, RemoteRecording
from calls.media_workers.surface import Media, MediaConference, MediaEndpoint
from calls.runner_hooks import RunnerHooks
from calls.runner_legs import LegBinding
from recordings import RecordingFlusher, RecordingWriter
from recordings import info as layout
from recordings.errors import RecordingError
from telephony.media.errors import MediaError
from telephony.media.playback import PlaybackOutcome

# the runner's lines, wherever its parts live: operators follow a call by this logger
log = logging.getLogger("calls.runner")

MixOp = Callable[[MediaConference, MediaEndpoint], None]


@dataclass
class _Recording:
    recording_id: str
    writer: RecordingWriter | RemoteRecording  # in process, or in the call's media worker
    conference: MediaConference


class FlowMedia:
    """The conferences, prompts and recording of one flow. `flow_id` names the flow now (its
    conferences are named after it); `recordings_root` None records nothing."""

    def __init__(
        self,
        media: Media,
        hooks: RunnerHooks,
        flow_id: Callable[[], str],
        *,
        prompts: Mapping[str, Path] | None = None,
        recordings_root: Path | None = None,
        recording_id: str,
        flusher: RecordingFlusher | None = None,
    ) -> None:
        self.media = media
        self.hooks = hooks
        self.flow_id = flow_id
        self.prompts = dict(prompts or {})
        self.recordings_root = recordings_root
        self.recording_id = recording_id
        self.flusher = flusher
        self._conferences: dict[str, MediaConference] = {}
        self._recording: _Recording | None = None
        self._start_failed = False  # the recording could not start: stored failed, not retried
        self._stopped_prompts: set[int] = set()

    def conference(self, conf_id: str) -> MediaConference:
        """The flow's conference `conf_id`, created on first use."""
        conf = self._conferences.get(conf_id)
        if conf is None:
            conf = self.media.create_conference(f"{self.flow_id()}:{conf_id}")
            self._conferences[conf_id] = conf
        return conf

    def join(self, binding: LegBinding, conf_id: str, legs: Iterable[LegBinding]) -> None:
        """Put the leg's endpoint in the conference under its role (`legs`: every leg)."""
        if binding.endpoint is None or binding.conference is not None:
            return
        conf = self.conference(conf_id)
        previous = conf.roles.get(binding.role)
        if previous is not None:  # a replaced unit whose BYE is still on its way: its track
            conf.remove(previous)  # goes on with the new unit of the same role
            for other in legs:
                if other.endpoint is previous:
                    other.conference = None
        conf.add(binding.endpoint, binding.role)
        binding.conference = conf

    def mix(self, binding: LegBinding | None, leg_id: str, op: MixOp) -> None:
        """Apply a mixing change (mute, hold) to a leg in a conference."""
        if binding is None or binding.conference is None or binding.endpoint is None:
            log.warning("flow %s: %s is not in a conference", self.flow_id(), leg_id)
            return
        op(binding.conference, binding.endpoint)

    def play(
        self, binding: LegBinding | None, cmd: c.Play, finished: Callable[[], None]
    ) -> Coroutine[Any, Any, None]:
        """Start the prompt on the leg; returns what waits for its end and calls `finished`
        when it played to the end (not stopped, not interrupted by a key)."""
        if binding is None or binding.endpoint is None:
            raise ValueError(f"leg {cmd.leg_id} has no media to play to")
        path = self.prompts.get(cmd.prompt_key)
        if path is None:
            raise ValueError(f"no prompt file for {cmd.prompt_key!r}")
        endpoint = binding.endpoint
        self._stopped_prompts.discard(id(endpoint))
        handle = endpoint.play(path, interrupt_on_dtmf=cmd.interruptible)

        async def wait() -> None:
            outcome = await handle
            if outcome is PlaybackOutcome.COMPLETED and id(endpoint) not in self._stopped_prompts:
                finished()

        return wait()

    def stop_playback(self, binding: LegBinding | None) -> None:
        """Stop the leg's prompt (its end is then not reported)."""
        if binding is not None and binding.endpoint is not None:
            self._stopped_prompts.add(id(binding.endpoint))
            binding.endpoint.stop_playback()

    def start_recording(self, conf_id: str) -> None:
        """Record the conference `conf_id` (once per flow). A recording that cannot even start
        (its directory cannot be created: a full or read-only disk) is still a row, `failed`
        with the error, so the call is never left without a record of why it has no audio."""
        if self._recording is not None or self._start_failed or self.recordings_root is None:
            return
        conf = self.conference(conf_id)
        writer: RecordingWriter | RemoteRecording
        if isinstance(conf, RemoteConference):  # the recorder runs beside the call's media
            writer = conf.record(self.recordings_root, self.recording_id)
        else:
            try:
                writer = RecordingWriter(self.recordings_root, self.recording_id)
            except RecordingError as exc:
                self._start_failed = True
                log.error("recording %s could not start: %s", self.recording_id, exc)
                directory = layout.recording_directory(
                    self.recordings_root, self.recording_id, datetime.now(UTC)
                )
                self.hooks.on_recording_started(self.recording_id, directory)
                self.hooks.on_recording_finished(
                    self.recording_id, None, f"recording could not start: {exc}"
                )
                return
            conf.add_tap(writer)
            if self.flusher is not None:
                self.flusher.add(writer)
        self._recording = _Recording(self.recording_id, writer, conf)
        self.hooks.on_recording_started(self.recording_id, writer.directory)

    async def stop_recording(self) -> None:
        """Finalise the recording (hashes, manifest) and report it, or why it failed."""
        rec, self._recording = self._recording, None
        if rec is None:
            return
        if isinstance(rec.writer, RemoteRecording):
            try:
                info, remote_error = await rec.writer.finish()
            except (RecordingError, MediaError) as exc:
                log.error("recording %s could not be finalised: %s", rec.recording_id, exc)
                self.hooks.on_recording_finished(rec.recording_id, None, str(exc))
                return
            self.hooks.on_recording_finished(rec.recording_id, info, remote_error)
            return
        rec.conference.remove_tap(rec.writer)
        if self.flusher is not None:
            self.flusher.remove(rec.writer)
        try:
            info = await asyncio.to_thread(rec.writer.finalise)
        except RecordingError as exc:
            log.error("recording %s could not be finalised: %s", rec.recording_id, exc)
            self.hooks.on_recording_finished(rec.recording_id, None, str(exc))
            return
        error = str(rec.writer.error) if rec.writer.error is not None else None
        self.hooks.on_recording_finished(rec.recording_id, info, error)
