"""The Kamailio edge of several linkcall nodes (docker/kamailio/edge.cfg, issue 16), for tests
and benchmarks: Kamailio with the dispatcher module on a free loopback port, its node list and
defines in its own work directory, stopped by its PID."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from lab import ports
from lab.process import ManagedProcess
from lab.sipprobe import sip_options

EDGE_CFG = Path(__file__).resolve().parents[1] / "docker" / "kamailio" / "edge.cfg"


class Edge:
    """Kamailio with edge.cfg: INVITEs to `service_regex` spread over `nodes` (their SIP ports on
    127.0.0.1), the nodes' own INVITEs sent on to the PBX at `pbx_port`."""

    def __init__(
        self,
        workdir: Path,
        nodes: list[int],
        pbx_port: int,
        *,
        service_regex: str = "^110$",
        probe_timeout_ms: int = 1000,
        log_level: int = 2,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.port = workdir, ports.sip_port()
        self.ctl = workdir / "ctl"
        (workdir / "dispatcher.list").write_text("".join(f"1 sip:127.0.0.1:{p}\n" for p in nodes))
        (workdir / "kamailio-edge-local.cfg").write_text(
            f"#!define SIP_UDP_PORT {self.port}\n"
            f'#!define DS_LIST "{workdir / "dispatcher.list"}"\n'
            f'#!define CTL_SOCKET "unix:{self.ctl}"\n'
            f'#!define PBX_DST "sip:127.0.0.1:{pbx_port}"\n'
            f'#!define SERVICE_REGEX "{service_regex}"\n'
            f"#!define PROBE_TIMEOUT_MS {probe_timeout_ms}\n"
            f"#!define LOG_LEVEL {log_level}\n"
        )
        self.proc = ManagedProcess(
            "kamailio-edge",
            ["kamailio", "-DD", "-E", "-f", EDGE_CFG, "-m", "64", "-M", "8", "-Y", workdir,
             "-P", workdir / "kamailio.pid"],
            log_path=workdir / "kamailio.log", cwd=workdir,
        )  # fmt: skip

    def start(self, timeout: float = 15.0) -> None:
        """Start Kamailio; return once it answers OPTIONS."""
        self.proc.start()
        deadline = time.monotonic() + timeout
        while (sip_options("127.0.0.1", self.port, timeout=0.3) or "").find(" 200 ") < 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"edge not answering OPTIONS:\n{self.log()}")
            time.sleep(0.2)

    def stop(self, timeout: float = 5.0) -> None:
        self.proc.stop(timeout)

    def log(self) -> str:
        return (self.workdir / "kamailio.log").read_text(errors="replace")[-4000:]

    def active(self) -> dict[int, bool]:
        """Node SIP port -> active in the dispatcher (answers its OPTIONS probes)."""
        out = subprocess.run(
            ["kamcmd", "-s", f"unix:{self.ctl}", "dispatcher.list"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout  # fmt: skip
        state: dict[int, bool] = {}
        port = None
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("URI:"):
                port = int(line.rsplit(":", 1)[1])
            elif line.startswith("FLAGS:") and port is not None:
                state[port] = line.split(":", 1)[1].strip().startswith("A")
        return state

    def wait_active(self, nodes: list[int], timeout: float = 10.0) -> None:
        """Wait until every node in `nodes` is active (has answered a probe)."""
        deadline = time.monotonic() + timeout
        while self.active() != dict.fromkeys(nodes, True):
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes not active: {self.active()}\n{self.log()}")
            time.sleep(0.2)
