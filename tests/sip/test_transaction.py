"""RFC 3261 transaction state machines driven by a fake clock (timers as data)."""

from __future__ import annotations

from telephony.sip.builder import make_response
from telephony.sip.headers import Headers
from telephony.sip.message import SipRequest, SipResponse, parse_message
from telephony.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    State,
    Terminated,
    TimedOut,
    TimerConfig,
)
from telephony.sip.uri import SipUri

T = TimerConfig()
DEST = ("127.0.0.1", 5060)


def request(method: str, branch: str = "z9hG4bKabc") -> SipRequest:
    h = Headers()
    h.add("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport")
    h.add("Route", "<sip:127.0.0.1;lr>")
    h.add("From", "<sip:a@127.0.0.1>;tag=f1")
    h.add("To", "<sip:b@127.0.0.1>")
    h.add("Call-ID", "cid")
    h.add("CSeq", f"1 {method}")
    return SipRequest(method=method, uri=SipUri("127.0.0.1", user="b"), headers=h)


def response(req: SipRequest, status: int) -> SipResponse:
    return make_response(req, status, to_tag="t9")


def sends(cmds: list[object]) -> list[object]:
    return [c.message for c in cmds if isinstance(c, Send)]


def run_until(tx: object, until: float) -> tuple[list[float], list[object]]:
    """Fire timers up to `until`; return the times and commands of each firing."""
    times: list[float] = []
    cmds: list[object] = []
    while True:
        due = tx.next_deadline()  # type: ignore[attr-defined]
        if due is None or due > until:
            return times, cmds
        out = tx.on_timer(due)  # type: ignore[attr-defined]
        times.append(due)
        cmds += out


def test_client_invite_timer_a_doubles_and_b_times_out() -> None:
    tx = ClientInviteTransaction(request("INVITE"), DEST, reliable=False, timers=T)
    assert sends(tx.start(0.0))
    times, cmds = run_until(tx, 100.0)
    resend_times = [t for t, c in zip(times, cmds, strict=False) if isinstance(c, Send)]
    assert resend_times[:4] == [0.5, 1.5, 3.5, 7.5]
    assert TimedOut("B") in cmds and Terminated() in cmds
    assert tx.state is State.TERMINATED
    assert max(times) == 32.0


def test_client_invite_over_tcp_does_not_retransmit() -> None:
    tx = ClientInviteTransaction(request("INVITE"), DEST, reliable=True, timers=T)
    tx.start(0.0)
    times, cmds = run_until(tx, 100.0)
    assert not sends(cmds)
    assert times == [32.0]


def test_client_invite_provisional_stops_retransmissions_and_timer_b() -> None:
    req = request("INVITE")
    tx = ClientInviteTransaction(req, DEST, reliable=False, timers=T)
    tx.start(0.0)
    assert tx.on_message(response(req, 180), 0.2) == [Deliver(response(req, 180))]
    assert tx.state is State.PROCEEDING
    assert tx.next_deadline() is None  # the TU's ring timeout governs from here


def test_client_invite_error_response_is_acked_and_absorbed() -> None:
    req = request("INVITE")
    tx = ClientInviteTransaction(req, DEST, reliable=False, timers=T)
    tx.start(0.0)
    busy = response(req, 486)
    cmds = tx.on_message(busy, 1.0)
    ack = sends(cmds)[0]
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    assert ack.top_via.branch == "z9hG4bKabc"  # same branch (17.1.1.3)
    assert ack.to.tag == "t9"
    assert ack.cseq.number == 1 and ack.cseq.method == "ACK"
    assert ack.headers.get_all("Route") == ["<sip:127.0.0.1;lr>"]
    assert any(isinstance(c, Deliver) for c in cmds)
    # a retransmitted 486 gets the ACK again but is not delivered twice
    again = tx.on_message(busy, 2.0)
    assert len(sends(again)) == 1 and not any(isinstance(c, Deliver) for c in again)
    times, cmds = run_until(tx, 100.0)
    assert times == [33.0] and tx.terminated  # timer D = 32 s


def test_client_invite_2xx_goes_accepted_and_redelivers_retransmissions() -> None:
    req = request("INVITE")
    tx = ClientInviteTransaction(req, DEST, reliable=False, timers=T)
    tx.start(0.0)
    ok = response(req, 200)
    assert tx.on_message(ok, 1.0) == [Deliver(ok)]
    assert tx.state is State.ACCEPTED
    assert tx.on_message(ok, 2.0) == [Deliver(ok)]
    times, _ = run_until(tx, 100.0)
    assert times == [33.0] and tx.terminated  # timer M = 64*T1


def test_client_non_invite_timer_e_caps_at_t2() -> None:
    tx = ClientNonInviteTransaction(request("BYE"), DEST, reliable=False, timers=T)
    tx.start(0.0)
    times, cmds = run_until(tx, 100.0)
    intervals = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert intervals[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert TimedOut("F") in cmds and times[-1] == 32.0


def test_client_non_invite_proceeding_retransmits_every_t2() -> None:
    req = request("REGISTER")
    tx = ClientNonInviteTransaction(req, DEST, reliable=False, timers=T)
    tx.start(0.0)
    tx.on_message(response(req, 100), 0.1)
    tx.on_timer(0.5)  # E fires once, the next one after T2
    assert tx.next_deadline() == 4.5


def test_client_non_invite_completed_absorbs_then_k() -> None:
    req = request("OPTIONS")
    tx = ClientNonInviteTransaction(req, DEST, reliable=False, timers=T)
    tx.start(0.0)
    ok = response(req, 200)
    assert tx.on_message(ok, 0.1) == [Deliver(ok)]
    assert tx.on_message(ok, 0.2) == []
    times, cmds = run_until(tx, 100.0)
    assert times == [5.1] and cmds == [Terminated()]  # timer K = T4


def test_server_invite_error_retransmits_until_ack() -> None:
    req = request("INVITE")
    tx = ServerInviteTransaction(req, reliable=False, timers=T)
    busy = response(req, 486)
    assert sends(tx.respond(busy, 0.0)) == [busy]
    _, cmds = run_until(tx, 1.6)
    assert len(sends(cmds)) == 2  # timer G at 0.5 and 1.5
    ack = parse_message(bytes(request("ACK")))
    assert isinstance(ack, SipRequest)
    tx.on_message(ack, 2.0)
    assert tx.state is State.CONFIRMED
    times, cmds = run_until(tx, 100.0)
    assert times == [7.0] and cmds == [Terminated()]  # timer I = T4


def test_server_invite_timer_h_without_ack() -> None:
    req = request("INVITE")
    tx = ServerInviteTransaction(req, reliable=False, timers=T)
    tx.respond(response(req, 603), 0.0)
    times, cmds = run_until(tx, 100.0)
    assert TimedOut("H") in cmds and times[-1] == 32.0
    intervals = [b - a for a, b in zip([0.0, *times], times, strict=False)][:5]
    assert intervals == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_server_invite_retransmitted_invite_gets_last_provisional() -> None:
    req = request("INVITE")
    tx = ServerInviteTransaction(req, reliable=False, timers=T)
    ringing = response(req, 180)
    tx.respond(ringing, 0.0)
    assert sends(tx.on_message(req, 0.3)) == [ringing]


def test_server_invite_2xx_retransmitted_until_dialog_ack() -> None:
    req = request("INVITE")
    tx = ServerInviteTransaction(req, reliable=False, timers=T)
    ok = response(req, 200)
    tx.respond(ok, 0.0)
    assert tx.state is State.ACCEPTED
    _, cmds = run_until(tx, 3.6)
    assert sends(cmds) == [ok, ok, ok]
    assert tx.ack_2xx() == [Terminated()]


def test_server_invite_2xx_without_ack_times_out_l() -> None:
    req = request("INVITE")
    tx = ServerInviteTransaction(req, reliable=True, timers=T)
    tx.respond(response(req, 200), 0.0)
    times, cmds = run_until(tx, 100.0)
    assert times == [32.0] and TimedOut("L") in cmds


def test_server_non_invite_absorbs_and_j() -> None:
    req = request("BYE")
    tx = ServerNonInviteTransaction(req, reliable=False, timers=T)
    assert tx.on_message(req, 0.0) == []  # Trying: absorbed
    ok = response(req, 200)
    tx.respond(ok, 0.1)
    assert sends(tx.on_message(req, 0.2)) == [ok]
    assert tx.respond(response(req, 500), 0.3) == []  # only one final response
    times, cmds = run_until(tx, 100.0)
    assert times == [32.1] and cmds == [Terminated()]
