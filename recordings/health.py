"""Health check of a recording: is the evidence there, intact and plausibly complete?

`check(info_or_directory, expected_duration_s)` re-reads every track from disk (what is stored
is what counts, not what the database remembers) and reports findings:

- MISSING_MANIFEST  the directory was never finalised (crashed and not yet recovered)
- MISSING_FILE      the directory or a track file is gone (or the mixed track never existed)
- UNREADABLE        a track is not a WAV file any more
- HASH_MISMATCH     a track's SHA-256 differs from the one recorded at finalisation
- SILENT_TRACK      a track's RMS level is below `silent_below_dbfs` (default -60 dBFS)
- TOO_SHORT         the recording is much shorter than the call: under `min_ratio` (90 %) of
                    the expected duration, or more than `max_shortfall_s` (2 s) short
- AUDIO_LOST        the writer could not store part of the call (a full or failing disk): the
                    manifest's `lost_s` is above zero. The tracks keep the call's length (the
                    dropped span is silence), so no other finding would show the hole
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from recordings import info as layout
from recordings import wavfile
from recordings.errors import WavFormatError
from recordings.info import RecordingInfo, TrackInfo

log = logging.getLogger(__name__)


class Problem(enum.Enum):
    """Kinds of findings, from the most to the least serious."""

    MISSING_MANIFEST = "missing_manifest"
    MISSING_FILE = "missing_file"
    UNREADABLE = "unreadable"
    HASH_MISMATCH = "hash_mismatch"
    SILENT_TRACK = "silent_track"
    TOO_SHORT = "too_short"
    AUDIO_LOST = "audio_lost"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with a recording; `track` is the role it concerns, if any."""

    problem: Problem
    track: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The outcome of a health check: `ok` when nothing was found."""

    recording_id: str
    directory: Path
    duration_s: float | None  # measured on disk, None if nothing could be measured
    expected_duration_s: float | None
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when the recording has no finding at all."""
        return not self.findings

    def has(self, problem: Problem, track: str | None = None) -> bool:
        """Whether a finding of this kind (for this track, if given) was made."""
        return any(f.problem is problem and track in (None, f.track) for f in self.findings)


def check(
    target: RecordingInfo | Path,
    expected_duration_s: float | None = None,
    *,
    silent_below_dbfs: float = -60.0,
    min_ratio: float = 0.9,
    max_shortfall_s: float = 2.0,
) -> HealthReport:
    """Check a recording given by its info (from the database) or its directory.

    With a directory, the expected hashes come from its manifest. `expected_duration_s` is the
    call's connected duration; without it the length is not judged.
    """
    findings: list[Finding] = []
    if isinstance(target, Path):
        if not target.is_dir():
            return _report(target.name, target, None, expected_duration_s, [_missing(target)])
        try:
            info = layout.read_manifest(target)
        except (OSError, ValueError, KeyError) as exc:
            detail = f"no readable manifest ({exc}): not finalised"
            findings = [Finding(Problem.MISSING_MANIFEST, None, detail)]
            return _report(target.name, target, None, expected_duration_s, findings)
    else:
        info = target
    if info.lost_s > 0:
        causes = "; ".join(info.errors) or "no cause recorded"
        detail = f"{info.lost_s:.1f} s of the call could not be written ({causes})"
        findings.append(Finding(Problem.AUDIO_LOST, None, detail))
    if not info.directory.is_dir():
        findings.append(_missing(info.directory))
        return _report(info.recording_id, info.directory, None, expected_duration_s, findings)
    if layout.MIXED not in info.tracks:
        findings.append(Finding(Problem.MISSING_FILE, layout.MIXED, "no mixed track recorded"))
    threshold = 32768 * 10 ** (silent_below_dbfs / 20)
    durations: dict[str, float] = {}
    for role, track in sorted(info.tracks.items()):
        measured = _check_track(track, threshold, findings)
        if measured is not None:
            durations[role] = measured
    duration = durations.get(layout.MIXED, max(durations.values(), default=None))
    if duration is not None and expected_duration_s is not None:
        shortfall = expected_duration_s - duration
        if duration < min_ratio * expected_duration_s or shortfall > max_shortfall_s:
            detail = f"{duration:.1f} s recorded for a {expected_duration_s:.1f} s call"
            findings.append(Finding(Problem.TOO_SHORT, None, detail))
    return _report(info.recording_id, info.directory, duration, expected_duration_s, findings)


def _check_track(track: TrackInfo, threshold: float, findings: list[Finding]) -> float | None:
    """Check one track file; append findings; return its measured duration if readable."""
    if not track.path.is_file():
        findings.append(Finding(Problem.MISSING_FILE, track.role, f"{track.path} is missing"))
        return None
    try:
        measured = wavfile.analyse(track.path)
    except (OSError, WavFormatError) as exc:
        findings.append(Finding(Problem.UNREADABLE, track.role, f"{track.path.name}: {exc}"))
        return None
    if measured.sha256 != track.sha256:
        detail = f"{track.path.name}: sha256 {measured.sha256} != recorded {track.sha256}"
        findings.append(Finding(Problem.HASH_MISMATCH, track.role, detail))
    if measured.rms < threshold:
        level = 20 * math.log10(measured.rms / 32768) if measured.rms > 0 else -math.inf
        detail = f"{track.path.name}: RMS {level:.1f} dBFS"
        findings.append(Finding(Problem.SILENT_TRACK, track.role, detail))
    return measured.frames / wavfile.SAMPLE_RATE


def _missing(directory: Path) -> Finding:
    return Finding(Problem.MISSING_FILE, None, f"recording directory {directory} is missing")


def _report(
    recording_id: str,
    directory: Path,
    duration: float | None,
    expected: float | None,
    findings: list[Finding],
) -> HealthReport:
    report = HealthReport(recording_id, directory, duration, expected, tuple(findings))
    if findings:
        log.warning(
            "recording %s health: %s",
            recording_id,
            "; ".join(f"{f.problem.value}: {f.detail}" for f in findings),
        )
    return report
