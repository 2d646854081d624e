"""The jitter buffer: reordering, concealment (repeat, fade, silence), never a burst."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from telephony.media.g711 import SILENCE_FRAME
from telephony.media.jitter import CONCEAL_GAINS, TRIM_WINDOW, JitterBuffer


def frame(value: int) -> bytes:
    return np.full(160, value, dtype="<i2").tobytes()


def level(f: bytes) -> int:
    return int(np.frombuffer(f, dtype="<i2")[0])


def test_plays_in_sequence_order_after_prefill() -> None:
    jb = JitterBuffer(prefill=2)
    jb.push(101, frame(101))
    assert jb.pop() == SILENCE_FRAME  # still prefilling
    jb.push(100, frame(100))
    jb.push(102, frame(102))
    assert [level(jb.pop()) for _ in range(3)] == [100, 101, 102]
    assert jb.counters.played == 3 and jb.counters.concealed == 0


def test_loss_repeats_last_frame_then_fades_to_silence() -> None:
    jb = JitterBuffer(prefill=1)
    jb.push(1, frame(1000))
    assert level(jb.pop()) == 1000
    out = [level(jb.pop()) for _ in range(5)]
    assert out == [round(1000 * g) for g in CONCEAL_GAINS] + [0, 0]
    assert jb.counters.concealed == 5


def test_late_packet_is_dropped_and_counted() -> None:
    jb = JitterBuffer(prefill=1)
    jb.push(1, frame(1))
    jb.pop()
    jb.pop()  # seq 2 missing: concealed
    assert not jb.push(2, frame(2))
    assert jb.counters.late == 1
    jb.push(3, frame(3))
    assert level(jb.pop()) == 3


def test_duplicates_are_ignored() -> None:
    jb = JitterBuffer(prefill=1)
    assert jb.push(5, frame(5))
    assert not jb.push(5, frame(5))
    assert jb.counters.duplicates == 1


def test_packets_held_up_by_a_stall_are_dropped_as_late_not_played_in_a_rush() -> None:
    jb = JitterBuffer(prefill=2, capacity=10)
    for seq in range(22):
        jb.push(seq, frame(seq))
        if seq >= 2:
            jb.pop()
    for _ in range(6):  # a 120 ms stall: the two queued frames play, then concealment
        jb.pop()
    for seq in range(22, 28):  # the stalled packets arrive at once
        jb.push(seq, frame(seq))
    assert jb.counters.late == 4
    assert [level(jb.pop()) for _ in range(2)] == [26, 27]  # one frame per tick, in order
    assert jb.counters.concealed == 4


def test_a_backlog_is_shed_one_frame_per_window_not_rushed() -> None:
    jb = JitterBuffer(prefill=2, capacity=10)
    for seq in range(9):  # a sender burst: nine frames queued at once
        jb.push(seq, frame(seq))
    seq = 9
    played = []
    for _ in range(10 * TRIM_WINDOW):
        jb.push(seq, frame(seq))
        seq += 1
        played.append(level(jb.pop()))
    steps = np.diff(played)
    assert set(steps.tolist()) <= {1, 2}  # at most one frame skipped at a time
    assert 1 <= jb.counters.trimmed <= 8
    assert len(jb) <= jb.prefill + 1


def test_overflow_drops_the_oldest() -> None:
    jb = JitterBuffer(prefill=2, capacity=4)
    for s in range(6):
        jb.push(s, frame(s))
    assert len(jb) == 4 and jb.counters.overflow_dropped == 2
    assert level(jb.pop()) == 2


def test_rebuffers_after_the_talker_stops_and_restarts_cleanly() -> None:
    jb = JitterBuffer(prefill=2)
    jb.push(0, frame(7))
    jb.push(1, frame(7))
    jb.pop()
    jb.pop()
    for _ in range(10):
        jb.pop()
    assert jb.counters.rebuffers == 1
    jb.push(500, frame(9))  # new talkspurt far ahead
    jb.push(501, frame(9))
    assert level(jb.pop()) == 9


@given(
    st.lists(
        st.tuples(st.integers(0, 15), st.booleans()),  # (arrival delay in ticks, lost)
        min_size=10,
        max_size=200,
    )
)
def test_whatever_the_network_does_frames_play_once_in_order(
    network: list[tuple[int, bool]],
) -> None:
    jb = JitterBuffer(prefill=2, capacity=10)
    arrivals: dict[int, list[int]] = {}
    for seq, (delay, lost) in enumerate(network):
        if not lost:
            arrivals.setdefault(seq + delay, []).append(seq)
    played: list[int] = []
    for tick in range(len(network) + 20):
        for seq in arrivals.get(tick, []):
            jb.push(seq, frame(seq + 1))
        out = jb.pop()
        assert len(out) == 320  # exactly one 20 ms frame per tick, never more
        if jb.counters.played > len(played):
            played.append(level(out) - 1)
    assert played == sorted(set(played))  # each frame at most once, in sequence order
    assert (
        jb.counters.played
        + jb.counters.late
        + jb.counters.overflow_dropped
        + jb.counters.trimmed
        + jb.counters.duplicates
        <= sum(len(v) for v in arrivals.values())
    )


def test_a_sequence_restart_far_behind_is_played_not_dropped_as_late() -> None:
    jb = JitterBuffer(prefill=1)
    for seq in range(1000, 1010):
        jb.push(seq, frame(seq))
        jb.pop()
    assert jb.push(5, frame(5))  # the sender restarted at 5 (same SSRC)
    assert level(jb.pop()) == 5
    assert jb.counters.late == 0
