"""An evidence package of one recording: a zip a court or an inspector can verify offline.

Layout (every path relative to the zip's root folder `<recording id>/`):

    tracks/<role>.wav        each track's WAV as recorded (mixed, caller, dispatcher, unit, …)
    manifest.json            the recording and its call, each file's size and SHA-256
    access-audit.json        who accessed this recording, when and how (this download included)
    SHA256SUMS               `sha256sum -c` format for every other file

`unzip x.zip && cd <id> && sha256sum -c SHA256SUMS` checks every file. The tracks' hashes in
the manifest are also compared with the hashes stored when the recording was sealed: a track
that no longer matches is refused (PackageError), not packaged.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from recordings.errors import RecordingError

_CHUNK = 1024 * 1024


class PackageError(RecordingError):
    """A track is missing or no longer matches the hash stored when it was sealed."""


@dataclass(frozen=True, slots=True)
class PackageTrack:
    """One track to put in the package: its role, its file and the hash stored at sealing."""

    role: str
    path: Path
    sealed_sha256: str | None


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def write_package(
    out: BinaryIO,
    *,
    recording_id: str,
    tracks: Sequence[PackageTrack],
    manifest: Mapping[str, Any],
    access_audit: Sequence[Mapping[str, Any]],
) -> dict[str, str]:
    """Write the zip to `out`; returns {path in the package: sha256} of every file listed in
    SHA256SUMS. PackageError when a track is missing or its hash changed since sealing."""
    sums: dict[str, str] = {}
    files: list[dict[str, Any]] = []
    for t in tracks:
        if not t.path.is_file():
            raise PackageError(f"track {t.role} is missing: {t.path.name}")
        digest, size = _sha256(t.path)
        if t.sealed_sha256 and digest != t.sealed_sha256:
            raise PackageError(
                f"track {t.role} does not match its sealed SHA-256 ({digest} != {t.sealed_sha256})"
            )
        name = f"tracks/{t.role}.wav"
        sums[name] = digest
        files.append({"path": name, "role": t.role, "size_bytes": size, "sha256": digest})
    full_manifest = {**manifest, "recording_id": recording_id, "files": files}
    texts = {
        "manifest.json": json.dumps(full_manifest, ensure_ascii=False, indent=2, default=str),
        "access-audit.json": json.dumps(list(access_audit), ensure_ascii=False, indent=2,
                                        default=str),
    }  # fmt: skip
    for name, text in texts.items():
        sums[name] = hashlib.sha256(text.encode()).hexdigest()
    root = f"{recording_id}/"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for t in tracks:
            z.write(t.path, root + f"tracks/{t.role}.wav")
        for name, text in texts.items():
            z.writestr(root + name, text)
        lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
        z.writestr(root + "SHA256SUMS", lines)
    return sums
