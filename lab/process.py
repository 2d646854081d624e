"""A small managed-process helper for lab peers.

``ManagedProcess`` starts a command with ``Popen`` in its own process group (session),
sends its stdout and stderr to a log file, waits for readiness with a deadline, and stops
it by PID: SIGTERM, then SIGKILL after a timeout. It only ever signals the process (and
that process's own group) that it started itself; it never looks processes up by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO


class ProcessError(RuntimeError):
    """A lab process failed to start, exited early or did not become ready."""


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll ``predicate`` until it is true; raise ``TimeoutError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


class ManagedProcess:
    """One child process with a log file, started in its own process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin_devnull: bool = True,
        die_with_parent: str | None = "TERM",
    ) -> None:
        self.name = name
        self.argv = [os.fspath(a) for a in argv]
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.stdin_devnull = stdin_devnull
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # ---- lifecycle ----
    def start(self) -> None:
        if self._proc is not None:
            raise ProcessError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"### start: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        env = None
        if self.env is not None:
            env = {**os.environ, **self.env}
        self._proc = subprocess.Popen(
            self._guarded_argv(),
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL if self.stdin_devnull else None,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: pgid == pid
        )

    def _guarded_argv(self) -> list[str]:
        """``argv``, run through ``setpriv --pdeathsig`` when possible.

        The child then gets ``die_with_parent`` when the thread that started it dies, so
        a test run killed without cleanup (SIGKILL, timeout) leaves no peer behind. Only
        from the main thread: a worker thread (``asyncio.to_thread``) may end while the
        process should live on.
        """
        if (
            self.die_with_parent is None
            or threading.current_thread() is not threading.main_thread()
            or shutil.which("setpriv") is None
        ):
            return self.argv
        return ["setpriv", f"--pdeathsig={self.die_with_parent}", "--", *self.argv]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait_ready(
        self, ready: Callable[[], bool], timeout: float, what: str = "readiness"
    ) -> None:
        """Wait until ``ready()``; fail early if the process exits, late at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise ProcessError(
                    f"{self.name} exited with {self.returncode} before {what}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if ready():
                return
            if time.monotonic() >= deadline:
                raise ProcessError(
                    f"{self.name}: no {what} after {timeout:.1f}s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit by itself; return its exit status."""
        if self._proc is None:
            raise ProcessError(f"{self.name} not started")
        return self._proc.wait(timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the process, SIGKILL its group after ``timeout``; return exit status.

        Idempotent. Children the process left in its own group (same pgid, i.e. the
        group we created) are killed too; nothing outside that group is touched.
        """
        proc = self._proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            # leftovers in our group (e.g. forked workers whose parent died): kill them
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            return proc.returncode
        finally:
            if self._log is not None:
                self._log.write(f"### stopped: rc={proc.returncode}\n".encode())
                self._log.close()
                self._log = None

    # ---- logs ----
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} rc={self.returncode}>"
