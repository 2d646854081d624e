"""Sampling profile of the service with py-spy (``--profile``), summarised as text.

py-spy is a benchmarking tool only (``.venv/bin/pip install py-spy``), not a project
dependency. ``Profile.start(pid)`` runs ``py-spy record --format raw`` on the service;
``stop()`` ends it by its PID with SIGINT (py-spy then writes its file) and ``summary()``
prints where the samples went: per thread, the innermost frames, and the project's own
functions (api/, callflows/, telephony/, recordings/, storage/) inclusive.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

PROJECT_DIRS = ("api/", "callflows/", "telephony/", "recordings/", "storage/")


def pyspy_path() -> str | None:
    """py-spy next to this interpreter, else on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


class Profile:
    """One ``py-spy record`` run against a PID."""

    def __init__(self, out: Path, rate: int = 100, *, gil: bool = False) -> None:
        self.out = out
        self.rate = rate
        self.gil = gil  # sample only the thread holding the GIL (who keeps the others waiting)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, pid: int) -> None:
        exe = pyspy_path()
        if exe is None:
            raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
        argv = [exe, "record", "-p", str(pid), "-r", str(self.rate), "-f", "raw"]
        argv += ["-o", str(self.out), "--threads", "--nonblocking"]
        if self.gil:
            argv.append("--gil")
        log = self.out.with_suffix(".log").open("wb")
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def summary(self, top: int = 15) -> str:
        """Text: samples per thread, top innermost frames, top project functions."""
        if not self.out.exists():
            return f"no profile written (see {self.out.with_suffix('.log')})"
        per_thread: Counter[str] = Counter()
        leaf: Counter[str] = Counter()
        project: Counter[str] = Counter()
        total = 0
        for line in self.out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            per_thread[frames[0].split(": ", 1)[-1]] += n
            leaf[frames[-1]] += n
            for frame in {f for f in frames[1:] if any(d in f for d in PROJECT_DIRS)}:
                project[frame] += n
        out = [f"py-spy: {total} samples ({self.out})"]
        out += [f"  thread {name}: {n}" for name, n in per_thread.most_common(6)]
        out.append("  innermost frames:")
        out += [f"    {n:5d}  {frame[:110]}" for frame, n in leaf.most_common(top)]
        out.append("  project functions (inclusive):")
        out += [f"    {n:5d}  {frame[:110]}" for frame, n in project.most_common(top)]
        return "\n".join(out)
