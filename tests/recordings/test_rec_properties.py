"""Property test: whatever parties come and go and however the disk fails, the tracks on disk
are exactly the call's audio, aligned, once the disk recovers before the end."""

from __future__ import annotations

import errno
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recordings import wavfile
from recordings.errors import RecordingWriteError
from recordings.writer import RecordingWriter
from tests.recordings.rec_audio import read_wav

ROLES = ("caller", "dispatcher", "unit")
REAL_PWRITE = os.pwrite


def frame(role_index: int, tick: int) -> bytes:
    """A frame whose samples name its role and tick, so misplaced audio is detectable."""
    value = (role_index + 1) * 1000 + tick % 997
    return value.to_bytes(2, "little", signed=True) * 160


tick_plan = st.lists(
    st.tuples(
        st.frozensets(st.sampled_from(range(3))),  # which parties are present this tick
        st.booleans(),  # flush after this tick
        st.booleans(),  # the disk refuses writes during that flush
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=tick_plan, in_role_order=st.booleans())
def test_tracks_hold_exactly_the_call_audio(
    plan: list[tuple[frozenset[int], bool, bool]], in_role_order: bool
) -> None:
    """Fed by `write` (a mapping per tick) or by `write_frames` (the conference's tap API: the
    same roles tuple for as long as the same parties are present)."""
    roles_of: dict[frozenset[int], tuple[str, ...]] = {}
    failing = [False]

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        if failing[0] and offset >= wavfile.HEADER_BYTES:
            n = len(data) // 3  # a short write, then the disk is full
            if n:
                failing[0] = False
                written = REAL_PWRITE(fd, bytes(data[:n]), offset)
                failing[0] = True
                return written
            raise OSError(errno.ENOSPC, "No space left on device")
        return REAL_PWRITE(fd, data, offset)

    with (
        mock.patch.object(wavfile, "pwrite", side_effect=pwrite),
        tempfile.TemporaryDirectory() as tmp,
    ):
        writer = RecordingWriter(Path(tmp), "prop", clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
        expected: dict[str, list[bytes]] = {"mixed": []}
        for tick, (present, flush, disk_full) in enumerate(plan):
            parties = {ROLES[i]: frame(i, tick) for i in sorted(present)}
            mixed = frame(5, tick)
            if in_role_order:
                roles = roles_of.setdefault(present, tuple(parties))
                writer.write_frames(mixed, roles, list(parties.values()))
            else:
                writer.write(mixed, parties)
            expected["mixed"].append(mixed)
            for role in list(expected):
                if role != "mixed" and role not in parties:
                    expected[role].append(bytes(320))
            for role, f in parties.items():
                expected.setdefault(role, [bytes(320)] * tick).append(f)
            if flush:
                failing[0] = disk_full
                try:
                    writer.flush()
                except OSError as exc:
                    raise AssertionError("raw OSError escaped the writer") from exc
                except RecordingWriteError:
                    assert disk_full, "flush failed although the disk had space"
                failing[0] = False
        info = writer.finalise()
        assert info.lost_s == 0
        assert sorted(info.tracks) == sorted(expected)
        for role, frames in expected.items():
            assert read_wav(info.tracks[role].path).tobytes() == b"".join(frames), role
