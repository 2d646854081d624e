"""Copy the recordings tree for a backup, list every file's SHA-256, and check copies back.

The list is in `sha256sum` format (`<hex>  <relative path>`), so `sha256sum -c SHA256SUMS`
verifies a backup with standard tools. Sealed recordings carry their own SHA256SUMS and
manifest as well; `verify_sealed` re-checks those after a restore.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from recordings.health import check
from recordings.info import MANIFEST_FILE

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def copy_tree(root: Path, dest: Path) -> list[tuple[str, str]]:
    """Copy every file under `root` to `dest` (same relative paths, modes kept); return
    (sha256, relative POSIX path) of each copy, hashed from the copy itself."""
    sums: list[tuple[str, str]] = []
    dest.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        return sums
    for path in _files(root):
        rel = path.relative_to(root)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        sums.append((sha256_file(target), rel.as_posix()))
    return sums


def write_sums(path: Path, sums: list[tuple[str, str]]) -> None:
    path.write_text("".join(f"{digest}  {rel}\n" for digest, rel in sums), encoding="utf-8")


def read_sums(path: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, rel = line.split("  ", 1)
            out.append((digest, rel))
    return out


def verify_sums(base: Path, sums: list[tuple[str, str]]) -> list[str]:
    """Problems found checking each listed file under `base` (empty: all intact)."""
    problems: list[str] = []
    for digest, rel in sums:
        path = base / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(path) != digest:
            problems.append(f"{rel}: sha256 differs from the backup's list")
    return problems


def sealed_directories(root: Path) -> list[Path]:
    """Every recording directory that has a manifest (sealed)."""
    return sorted(p.parent for p in root.rglob(MANIFEST_FILE)) if root.is_dir() else []


def verify_sealed(root: Path) -> list[str]:
    """Each sealed recording checked against its own manifest hashes (hash findings only)."""
    problems: list[str] = []
    for directory in sealed_directories(root):
        report = check(directory)
        for f in report.findings:
            if f.problem.value in ("hash_mismatch", "missing_file", "unreadable"):
                problems.append(f"{directory.relative_to(root)}: {f.problem.value} {f.detail}")
    return problems
