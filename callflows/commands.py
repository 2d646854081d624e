"""Commands returned by the call flows, for a runner to execute; and the `Flow` protocol.

A flow never performs I/O: `start(now)` and `handle(event, now)` return a list of these, in the
order the runner must execute them. Leg ids are chosen by the flow (e.g. "unit-2"); the runner
maps them to its SIP dialogs and reports events with the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callflows.events import Event


@dataclass(frozen=True, slots=True)
class Dial:
    """Place an outbound call. The flow runs its own ring timer; `ring_timeout_s` is advisory."""

    leg_id: str
    role: str
    number: str
    ring_timeout_s: float


@dataclass(frozen=True, slots=True)
class CancelDial:
    """Stop an outbound call that has not been answered (CANCEL); expect LegEnded(cancelled)."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer an inbound call that is still ringing (200 OK)."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse an inbound call that is still ringing with a final SIP status (e.g. 480)."""

    leg_id: str
    sip_status: int


@dataclass(frozen=True, slots=True)
class Hangup:
    """End an answered leg (BYE)."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class Join:
    """Put the leg into the conference (mixer) `conference_id`; joining it twice is a no-op."""

    leg_id: str
    conference_id: str


@dataclass(frozen=True, slots=True)
class Mute:
    """The others in the conference stop hearing this leg."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class Unmute:
    """Undo `Mute`."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class Hold:
    """Take the leg out of the mix both ways (the conference only: no re-INVITE is sent)."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class Unhold:
    """Undo `Hold`."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class Play:
    """Play a prompt (a key into the prompt catalogue) to the leg; expect PlaybackFinished."""

    leg_id: str
    prompt_key: str
    interruptible: bool = True


@dataclass(frozen=True, slots=True)
class SendDigits:
    """Key in `digits` on an answered leg (an extension behind a switchboard): RFC 4733 events
    when the peer agreed to telephone-event, SIP INFO (application/dtmf-relay) otherwise.
    Expect `DigitsSent(leg_id, ok)` once the last digit went out (or sending failed)."""

    leg_id: str
    digits: str


@dataclass(frozen=True, slots=True)
class StopPlayback:
    """Stop whatever plays on the leg (a key was pressed); no PlaybackFinished follows."""

    leg_id: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Start (or restart) a timer; when it expires feed back `TimerFired(timer_id)`."""

    timer_id: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Cancel a timer; a `TimerFired` that races with this is ignored by the flow."""

    timer_id: str


@dataclass(frozen=True, slots=True)
class StartRecording:
    """Start recording the conference (mixed track plus one track per leg)."""

    conference_id: str


@dataclass(frozen=True, slots=True)
class StopRecording:
    """Stop and finalise the conference's recording."""

    conference_id: str


@dataclass(frozen=True, slots=True)
class Save:
    """Persist the flow's state: `snapshot` is the flow's own frozen snapshot type
    (`BridgeSnapshot`, `InboundSnapshot`, `KeyPromptResult`)."""

    flow_id: str
    snapshot: object


@dataclass(frozen=True, slots=True)
class Notify:
    """A domain fact for listeners (server-sent events, audit): e.g. topic "party.connected"."""

    flow_id: str
    topic: str
    role: str | None = None
    detail: str | None = None


Command = (
    Dial
    | CancelDial
    | Answer
    | Reject
    | Hangup
    | Join
    | Mute
    | Unmute
    | Hold
    | Unhold
    | Play
    | SendDigits
    | StopPlayback
    | StartTimer
    | CancelTimer
    | StartRecording
    | StopRecording
    | Save
    | Notify
)


class Flow(Protocol):
    """What every call flow offers a runner."""

    @property
    def flow_id(self) -> str:
        """The flow's id (bridge id, survey attempt id, ...)."""
        ...

    @property
    def finished(self) -> bool:
        """True once the flow reached a final state; later events are mostly ignored."""
        ...

    def start(self, now: datetime) -> list[Command]:
        """The commands that begin the flow (call exactly once)."""
        ...

    def handle(self, event: Event, now: datetime) -> list[Command]:
        """Feed one event; returns the commands to execute, in order."""
        ...
