"""RFC 3261 section 17 transactions as sans-IO state machines, timers as data.

Each transaction is fed messages (`on_message`), TU commands (`respond`) and the time
(`on_timer(now)`), and returns `Command`s for the I/O edge to carry out: send a message, deliver
one to the transaction user, report a timeout, forget the transaction. Nothing here reads a
clock or touches a socket: `next_deadline()` says when the caller must call `on_timer` again.

Timers (RFC 3261 17 and table 4; RFC 6026 for the Accepted states):
    A/B   client INVITE: retransmit INVITE (unreliable) / give up in Calling
    D     client INVITE: absorb final-response retransmissions in Completed
    M     client INVITE: absorb 2xx retransmissions in Accepted (RFC 6026)
    E/F   client non-INVITE: retransmit / give up
    K     client non-INVITE: absorb response retransmissions in Completed
    G/H   server INVITE: retransmit 3xx-6xx / give up waiting for ACK
    I     server INVITE: absorb ACK retransmissions in Confirmed
    L     server INVITE: 2xx sent, wait for the ACK (RFC 6026); "2xx" retransmits it (13.3.1.4)
    J     server non-INVITE: absorb request retransmissions in Completed
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import ClassVar

from .headers import Headers
from .message import Message, SipRequest, SipResponse

logger = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 T1/T2/T4 (seconds)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


# -- commands for the I/O edge ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Send:
    """Put `message` on the wire: to `dest` for requests, by its Via for responses (dest None)."""

    message: Message
    dest: Address | None


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand `message` to the transaction user (responses of client transactions)."""

    message: Message


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The transaction gave up: `timer` says which timer fired (B, F, H or L)."""

    timer: str


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction is over; the caller drops it from its tables."""


Command = Send | Deliver | TimedOut | Terminated

TransactionKey = tuple[str, ...]


def client_key(branch: str, method: str) -> TransactionKey:
    """RFC 3261 17.1.3: a response matches by top Via branch and CSeq method."""
    return ("c", branch, method)


def server_key(req: SipRequest) -> TransactionKey:
    """RFC 3261 17.2.3: branch + sent-by + method, ACK matching its INVITE."""
    via = req.top_via
    method = "INVITE" if req.method == "ACK" else req.method
    branch = via.branch or ""
    if branch.startswith("z9hG4bK"):
        host, port = via.sent_by
        return ("s", branch, host, str(port), method)
    # RFC 2543 peer: fall back on the dialog-identifying fields (17.2.3, second half)
    cseq = req.cseq
    return ("s2543", req.call_id, req.from_.tag or "", str(cseq.number), str(via), method)


class Transaction:
    """Common machinery: state with a logged `_set_state`, named timers with deadlines."""

    _LEGAL: ClassVar[dict[State, frozenset[State]]] = {}

    def __init__(self, *, reliable: bool, timers: TimerConfig, key: TransactionKey) -> None:
        self.reliable = reliable
        self.t = timers
        self.key = key
        self.state: State | None = None
        self._deadlines: dict[str, float] = {}
        self._intervals: dict[str, float] = {}

    def _set_state(self, state: State) -> None:
        if self.state is not None and state not in self._LEGAL.get(self.state, frozenset()):
            raise AssertionError(f"illegal transition {self.state} -> {state}")
        logger.debug("%s %s - %s -> %s", type(self).__name__, self.key[1], self.state, state)
        self.state = state

    @property
    def terminated(self) -> bool:
        return self.state == State.TERMINATED

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values()) if self._deadlines else None

    def _start_timer(self, name: str, now: float, interval: float) -> None:
        self._deadlines[name] = now + interval
        self._intervals[name] = interval

    def _stop_timer(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)
            self._intervals.pop(name, None)

    def _terminate(self) -> list[Command]:
        self._deadlines.clear()
        self._set_state(State.TERMINATED)
        return [Terminated()]

    def on_timer(self, now: float) -> list[Command]:
        """Fire every timer due at `now` (in deadline order)."""
        out: list[Command] = []
        while self._deadlines and not self.terminated:
            name, due = min(self._deadlines.items(), key=lambda kv: kv[1])
            if due > now:
                break
            interval = self._intervals.get(name, 0.0)
            self._stop_timer(name)
            out.extend(self._fire(name, now, interval))
        return out

    def _fire(self, name: str, now: float, interval: float) -> list[Command]:
        raise NotImplementedError


class ClientInviteTransaction(Transaction):
    """RFC 3261 17.1.1 (+ RFC 6026 Accepted)."""

    _LEGAL: ClassVar[dict[State, frozenset[State]]] = {
        State.CALLING: frozenset(
            {State.PROCEEDING, State.ACCEPTED, State.COMPLETED, State.TERMINATED}
        ),
        State.PROCEEDING: frozenset(
            {State.PROCEEDING, State.ACCEPTED, State.COMPLETED, State.TERMINATED}
        ),
        State.ACCEPTED: frozenset({State.TERMINATED}),
        State.COMPLETED: frozenset({State.TERMINATED}),
    }

    def __init__(
        self, request: SipRequest, dest: Address, *, reliable: bool, timers: TimerConfig
    ) -> None:
        branch = request.top_via.branch or ""
        super().__init__(reliable=reliable, timers=timers, key=client_key(branch, "INVITE"))
        self.request = request
        self.dest = dest

    def start(self, now: float) -> list[Command]:
        self._set_state(State.CALLING)
        if not self.reliable:
            self._start_timer("A", now, self.t.t1)
        self._start_timer("B", now, 64 * self.t.t1)
        return [Send(self.request, self.dest)]

    def _fire(self, name: str, now: float, interval: float) -> list[Command]:
        if name == "A" and self.state == State.CALLING:
            self._start_timer("A", now, 2 * interval)
            return [Send(self.request, self.dest)]
        if name == "B" and self.state == State.CALLING:
            return [TimedOut("B"), *self._terminate()]
        if name in ("D", "M"):
            return self._terminate()
        return []

    def on_message(self, resp: SipResponse, now: float) -> list[Command]:
        status = resp.status
        if self.state in (State.CALLING, State.PROCEEDING):
            if status < 200:
                self._stop_timer("A", "B")
                self._set_state(State.PROCEEDING)
                return [Deliver(resp)]
            self._stop_timer("A", "B")
            if status < 300:
                self._set_state(State.ACCEPTED)
                self._start_timer("M", now, 64 * self.t.t1)
                return [Deliver(resp)]
            self._set_state(State.COMPLETED)
            self._start_timer("D", now, 0.0 if self.reliable else 32.0)
            return [Send(self.ack_for(resp), self.dest), Deliver(resp)]
        if self.state == State.ACCEPTED and 200 <= status < 300:
            return [Deliver(resp)]  # the TU re-sends its ACK for a retransmitted 2xx
        if self.state == State.COMPLETED and status >= 300:
            return [Send(self.ack_for(resp), self.dest)]
        return []

    def ack_for(self, resp: SipResponse) -> SipRequest:
        """The ACK for a non-2xx final response (RFC 3261 17.1.1.3): same branch, same Route."""
        req = self.request
        h = Headers()
        h.add("Via", req.headers.get_all("Via")[0])
        for route in req.headers.get_all("Route"):
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", req.headers.get("From") or "")
        h.add("To", resp.headers.get("To") or "")
        h.add("Call-ID", req.call_id)
        h.add("CSeq", f"{req.cseq.number} ACK")
        return SipRequest(method="ACK", uri=req.uri, headers=h)


class ClientNonInviteTransaction(Transaction):
    """RFC 3261 17.1.2."""

    _LEGAL: ClassVar[dict[State, frozenset[State]]] = {
        State.TRYING: frozenset({State.PROCEEDING, State.COMPLETED, State.TERMINATED}),
        State.PROCEEDING: frozenset({State.PROCEEDING, State.COMPLETED, State.TERMINATED}),
        State.COMPLETED: frozenset({State.TERMINATED}),
    }

    def __init__(
        self, request: SipRequest, dest: Address, *, reliable: bool, timers: TimerConfig
    ) -> None:
        branch = request.top_via.branch or ""
        super().__init__(reliable=reliable, timers=timers, key=client_key(branch, request.method))
        self.request = request
        self.dest = dest

    def start(self, now: float) -> list[Command]:
        self._set_state(State.TRYING)
        if not self.reliable:
            self._start_timer("E", now, self.t.t1)
        self._start_timer("F", now, 64 * self.t.t1)
        return [Send(self.request, self.dest)]

    def _fire(self, name: str, now: float, interval: float) -> list[Command]:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            nxt = self.t.t2 if self.state == State.PROCEEDING else min(2 * interval, self.t.t2)
            self._start_timer("E", now, nxt)
            return [Send(self.request, self.dest)]
        if name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            return [TimedOut("F"), *self._terminate()]
        if name == "K":
            return self._terminate()
        return []

    def on_message(self, resp: SipResponse, now: float) -> list[Command]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []  # Completed: retransmissions absorbed
        if resp.status < 200:
            self._set_state(State.PROCEEDING)
            return [Deliver(resp)]
        self._stop_timer("E", "F")
        self._set_state(State.COMPLETED)
        self._start_timer("K", now, 0.0 if self.reliable else self.t.t4)
        return [Deliver(resp)]


class ServerInviteTransaction(Transaction):
    """RFC 3261 17.2.1 (+ RFC 6026 Accepted, with the 2xx retransmission of 13.3.1.4)."""

    _LEGAL: ClassVar[dict[State, frozenset[State]]] = {
        State.PROCEEDING: frozenset(
            {State.PROCEEDING, State.ACCEPTED, State.COMPLETED, State.TERMINATED}
        ),
        State.ACCEPTED: frozenset({State.TERMINATED}),
        State.COMPLETED: frozenset({State.CONFIRMED, State.TERMINATED}),
        State.CONFIRMED: frozenset({State.TERMINATED}),
    }

    def __init__(self, request: SipRequest, *, reliable: bool, timers: TimerConfig) -> None:
        super().__init__(reliable=reliable, timers=timers, key=server_key(request))
        self.request = request
        self.source: Address | None = None  # where the request came from (for TCP replies)
        self.last_response: SipResponse | None = None
        self._set_state(State.PROCEEDING)

    def respond(self, resp: SipResponse, now: float) -> list[Command]:
        if self.state != State.PROCEEDING:
            return []  # a final response was already sent
        self.last_response = resp
        if resp.status >= 300:
            self._set_state(State.COMPLETED)
            if not self.reliable:
                self._start_timer("G", now, self.t.t1)
            self._start_timer("H", now, 64 * self.t.t1)
        elif resp.status >= 200:
            self._set_state(State.ACCEPTED)
            if not self.reliable:
                self._start_timer("2xx", now, self.t.t1)
            self._start_timer("L", now, 64 * self.t.t1)
        return [Send(resp, None)]

    def on_message(self, req: SipRequest, now: float) -> list[Command]:
        if req.method == "ACK":
            if self.state == State.COMPLETED:
                self._stop_timer("G", "H")
                self._set_state(State.CONFIRMED)
                self._start_timer("I", now, 0.0 if self.reliable else self.t.t4)
            return []
        if self.last_response is not None and self.state in (
            State.PROCEEDING,
            State.COMPLETED,
            State.ACCEPTED,
        ):
            return [Send(self.last_response, None)]  # retransmitted INVITE
        return []

    def ack_2xx(self) -> list[Command]:
        """The TU saw the ACK for our 2xx (it carries its own branch, so the dialog matched it)."""
        if self.state == State.ACCEPTED:
            return self._terminate()
        return []

    def _fire(self, name: str, now: float, interval: float) -> list[Command]:
        if name == "G" and self.state == State.COMPLETED and self.last_response is not None:
            self._start_timer("G", now, min(2 * interval, self.t.t2))
            return [Send(self.last_response, None)]
        if name == "2xx" and self.state == State.ACCEPTED and self.last_response is not None:
            self._start_timer("2xx", now, min(2 * interval, self.t.t2))
            return [Send(self.last_response, None)]
        if name in ("H", "L"):
            return [TimedOut(name), *self._terminate()]
        if name == "I":
            return self._terminate()
        return []


class ServerNonInviteTransaction(Transaction):
    """RFC 3261 17.2.2."""

    _LEGAL: ClassVar[dict[State, frozenset[State]]] = {
        State.TRYING: frozenset({State.PROCEEDING, State.COMPLETED, State.TERMINATED}),
        State.PROCEEDING: frozenset({State.PROCEEDING, State.COMPLETED, State.TERMINATED}),
        State.COMPLETED: frozenset({State.TERMINATED}),
    }

    def __init__(self, request: SipRequest, *, reliable: bool, timers: TimerConfig) -> None:
        super().__init__(reliable=reliable, timers=timers, key=server_key(request))
        self.request = request
        self.source: Address | None = None
        self.last_response: SipResponse | None = None
        self._set_state(State.TRYING)

    def respond(self, resp: SipResponse, now: float) -> list[Command]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        self.last_response = resp
        if resp.status < 200:
            self._set_state(State.PROCEEDING)
        else:
            self._set_state(State.COMPLETED)
            self._start_timer("J", now, 0.0 if self.reliable else 64 * self.t.t1)
        return [Send(resp, None)]

    def on_message(self, req: SipRequest, now: float) -> list[Command]:
        if self.last_response is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            return [Send(self.last_response, None)]
        return []

    def _fire(self, name: str, now: float, interval: float) -> list[Command]:
        if name == "J":
            return self._terminate()
        return []


ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction
ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction
