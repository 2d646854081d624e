"""The archive: what the API can read back, and what it refuses."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recordings.archive import ByteRange, FilesystemArchive, parse_range
from recordings.errors import (
    ArchiveError,
    ArchiveKeyError,
    ArchiveNotFoundError,
    RangeNotSatisfiableError,
)
from recordings.writer import RecordingWriter
from tests.recordings.rec_audio import tone_frame

START = datetime(2026, 11, 30, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[FilesystemArchive, dict[str, str]]:
    """An archive over a writer's root holding one finalised 5 s call; role -> key."""
    root = tmp_path / "var" / "recordings"
    writer = RecordingWriter(root, "call-9", clock=lambda: START)
    for tick in range(250):
        frame = tone_frame(400, tick)
        writer.write(frame, {"caller": frame})
        if tick % 50 == 49:
            writer.flush()
    info = writer.finalise()
    archive = FilesystemArchive(root)
    return archive, {role: archive.key_of(t.path) for role, t in info.tracks.items()}


def test_finalised_tracks_are_listed_and_read_back_intact(
    recorded: tuple[FilesystemArchive, dict[str, str]],
) -> None:
    archive, keys = recorded
    assert keys["mixed"] == "2026/11/30/call-9/mixed.wav"
    listed = archive.list("2026/11")
    assert set(keys.values()) <= set(listed)
    assert "2026/11/30/call-9/manifest.json" in listed
    assert archive.list() == listed and archive.list("2027") == []
    body = b"".join(archive.read(keys["caller"]))
    assert len(body) == archive.size(keys["caller"]) == 44 + 80000
    with archive.open(keys["caller"]) as f:
        assert f.read() == body
    assert archive.resolve(keys["caller"]).read_bytes() == body
    assert archive.exists(keys["caller"]) and not archive.exists("2026/11/30/call-9/unit.wav")


def test_byte_ranges_return_exactly_the_bytes_asked_for(
    recorded: tuple[FilesystemArchive, dict[str, str]],
) -> None:
    archive, keys = recorded
    key = keys["mixed"]
    whole = b"".join(archive.read(key))
    size = len(whole)
    for header, expected in [
        ("bytes=0-43", whole[:44]),
        ("bytes=44-", whole[44:]),
        ("bytes=-100", whole[-100:]),
        ("bytes=1000-99999999", whole[1000:]),
        ("bytes=65530-65545", whole[65530:65546]),
    ]:
        byte_range = parse_range(header, size, key=key)
        assert byte_range is not None
        assert b"".join(archive.read(key, byte_range)) == expected, header
    assert parse_range("bytes=10-19", size) == ByteRange(10, 19)
    assert ByteRange(10, 19).content_range(size) == f"bytes 10-19/{size}"
    assert parse_range(None, size) is None
    assert parse_range("bytes=0-1,5-9", size) is None  # several ranges: send it whole
    assert parse_range("items=0-1", size) is None
    for bad in (f"bytes={size}-", "bytes=-0", "bytes=20-10"):
        with pytest.raises(RangeNotSatisfiableError) as err:
            parse_range(bad, size)
        assert err.value.status_hint == 416 and err.value.size == size


@pytest.mark.parametrize(
    "key",
    [
        "../secret.wav",
        "2026/../../etc/passwd",
        "/etc/passwd",
        "2026//x.wav",
        "2026/./x.wav",
        "a\\..\\b",
        "a/\0b",
        ".hidden",
        "",
    ],
)
def test_path_traversal_is_refused(
    recorded: tuple[FilesystemArchive, dict[str, str]], key: str
) -> None:
    archive, _ = recorded
    with pytest.raises(ArchiveKeyError):
        archive.read(key)
    with pytest.raises(ArchiveKeyError):
        archive.exists(key)


def test_symlink_out_of_the_archive_is_refused(
    recorded: tuple[FilesystemArchive, dict[str, str]], tmp_path: Path
) -> None:
    archive, _ = recorded
    outside = tmp_path / "outside.txt"
    outside.write_text("not a recording")
    (archive.root / "escape").symlink_to(tmp_path)
    with pytest.raises(ArchiveKeyError):
        archive.open("escape/outside.txt")
    assert not any("outside" in k for k in archive.list())


def test_store_copies_once_and_never_overwrites(
    recorded: tuple[FilesystemArchive, dict[str, str]], tmp_path: Path
) -> None:
    archive, keys = recorded
    source = archive.resolve(keys["mixed"])
    archive.store("imported/2026/call-9-mixed.wav", source)
    copied = b"".join(archive.read("imported/2026/call-9-mixed.wav"))
    assert hashlib.sha256(copied).digest() == hashlib.sha256(source.read_bytes()).digest()
    other = tmp_path / "other.wav"
    other.write_bytes(b"different")
    with pytest.raises(ArchiveError):
        archive.store("imported/2026/call-9-mixed.wav", other)
    assert b"".join(archive.read("imported/2026/call-9-mixed.wav")) == copied
    with pytest.raises(ArchiveNotFoundError):
        archive.read("2026/11/30/call-9/nothing.wav")
    assert not [k for k in archive.list() if k.endswith(".tmp")]
