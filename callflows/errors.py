"""Errors raised by the call flows.

Hierarchy::

    CallflowError                      base of everything raised here
    ├── CallflowConfigError            settings or inputs that cannot work (also a ValueError)
    └── EventError                     an event that does not fit the flow's state
        ├── UnknownLegError            the leg id was never issued by this flow
        ├── PartyStateError            a request for a party in the wrong state (hold a party
        │                              that is not connected, redial a connected one, ...)
        ├── FlowFinishedError          a request to a flow that has already ended or failed
        └── IllegalTransitionError     a transition missing from the table (a bug, not a user error)

Every `EventError` names the flow (bridge / survey / duty check id) and, when there is one,
the party or leg, so that the API layer can answer with a precise 409/404.
"""

from __future__ import annotations


class CallflowError(Exception):
    """Base class of every error raised by callflows."""


class CallflowConfigError(CallflowError, ValueError):
    """Settings or inputs that cannot work (an empty dial list, a key map without keys, ...)."""


class EventError(CallflowError):
    """An event or request that does not fit the flow's current state.

    `flow_id` names the flow, `party` the role or leg concerned (None for flow-wide requests),
    `state` the state the flow or party was in; `status_hint` is the HTTP status an API should
    answer with (h11 style).
    """

    status_hint = 409

    def __init__(
        self, message: str, *, flow_id: str, party: str | None = None, state: str | None = None
    ) -> None:
        super().__init__(message)
        self.flow_id = flow_id
        self.party = party
        self.state = state

    def __str__(self) -> str:
        where = f"flow {self.flow_id}"
        if self.party is not None:
            where += f", party {self.party}"
        if self.state is not None:
            where += f", state {self.state}"
        return f"{self.args[0]} ({where})"


class UnknownLegError(EventError):
    """An event names a leg this flow never created."""

    status_hint = 404


class PartyStateError(EventError):
    """A request for a party in a state where it makes no sense."""


class FlowFinishedError(EventError):
    """A request to a flow that has already ended or failed."""


class IllegalTransitionError(EventError):
    """A state change missing from the flow's transition table: a bug in the flow itself."""

    status_hint = 500
