"""`linkcall serve` as a real process (uvicorn, the CLI's own wiring) for edge tests."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from lab import ports


@dataclass
class Served:
    """A running `linkcall serve`: its pid, base URL and an admin token made by the CLI."""

    pid: int
    host: str
    port: int
    base_url: str
    admin_token: str

    def rss_bytes(self) -> int:
        """Resident set size of the server process, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def service_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a service in trunk mode whose peer nobody answers at."""
    rtp = ports.rtp_range(20)
    env = {
        **os.environ,
        "LINKCALL_DATA_DIR": str(tmp_path / "data"),
        "LINKCALL_SIP_LISTEN": f"127.0.0.1:{ports.sip_port()}",
        "LINKCALL_SIP_TRUNK_PEER": "127.0.0.1:9",
        "LINKCALL_RTP_PORTS": f"{rtp.lo}-{rtp.hi}",
        "LINKCALL_NODE_NAME": f"edge-{os.getpid()}",
    }
    env.pop("LINKCALL_DATABASE_URL", None)
    env.pop("LINKCALL_CONFIG", None)
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `linkcall ARGS` (the installed console script's module) to completion."""
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextlib.contextmanager
def serve(tmp_path: Path, *, tls_ca: Path | None = None, **extra: str) -> Iterator[Served]:
    """Start `linkcall serve` on a free loopback port; wait (≤ 60 s) until /healthz answers."""
    env = service_env(tmp_path, **extra)
    made = cli(env, "tokens", "create", "--role", "admin", "--name", "edge-test")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    port = free_tcp_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    scheme = "https" if tls_ca else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(tls_ca)) if tls_ca else True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                output = (tmp_path / "serve.log").read_text()
                raise AssertionError(f"linkcall serve exited {proc.returncode}: {output}")
            try:
                if httpx.get(f"{base}/healthz", verify=verify, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("linkcall serve did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield Served(proc.pid, "127.0.0.1", port, base, token)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
