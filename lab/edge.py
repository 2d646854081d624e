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
    """Kamailio with edge.cfg: INVITEs to `service_regex` spread over `nodes` (SIP ports on
    127.0.0.1, or (address, port)), the nodes' own INVITEs sent on to the PBX at `pbx` (a port
    on 127.0.0.1, or (address, port)). With `netns` it runs inside that network namespace
    (lab.netns), listening on `listen_ip`."""

    def __init__(
        self,
        workdir: Path,
        nodes: list[int] | list[tuple[str, int]],
        pbx: int | tuple[str, int],
        *,
        service_regex: str = "^110$",
        probe_timeout_ms: int = 1000,
        log_level: int = 2,
        listen_ip: str = "127.0.0.1",
        netns: str | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.port, self.netns = workdir, ports.sip_port(), netns
        self.ctl = workdir / "ctl"
        targets = [n if isinstance(n, tuple) else ("127.0.0.1", n) for n in nodes]
        pbx_host, pbx_port = pbx if isinstance(pbx, tuple) else ("127.0.0.1", pbx)
        (workdir / "dispatcher.list").write_text("".join(f"1 sip:{h}:{p}\n" for h, p in targets))
        (workdir / "kamailio-edge-local.cfg").write_text(
            f'#!define LISTEN_IP "{listen_ip}"\n'
            f"#!define SIP_UDP_PORT {self.port}\n"
            f'#!define DS_LIST "{workdir / "dispatcher.list"}"\n'
            f'#!define CTL_SOCKET "unix:{self.ctl}"\n'
            f'#!define PBX_DST "sip:{pbx_host}:{pbx_port}"\n'
            f'#!define SERVICE_REGEX "{service_regex}"\n'
            f"#!define PROBE_TIMEOUT_MS {probe_timeout_ms}\n"
            f"#!define LOG_LEVEL {log_level}\n"
        )
        argv: list[str | Path] = [
            "kamailio", "-DD", "-E", "-f", EDGE_CFG, "-m", "64", "-M", "8", "-Y", workdir,
            "-P", workdir / "kamailio.pid",
        ]  # fmt: skip
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.proc = ManagedProcess("kamailio-edge", argv, log_path=workdir / "kamailio.log",
                                   cwd=workdir)  # fmt: skip

    def start(self, timeout: float = 15.0) -> None:
        """Start Kamailio; return once it answers OPTIONS (in a namespace: its control
        socket, since its address is not reachable from here)."""
        self.proc.start()
        deadline = time.monotonic() + timeout
        while not self._up():
            if time.monotonic() > deadline:
                raise TimeoutError(f"edge not answering:\n{self.log()}")
            time.sleep(0.2)

    def _up(self) -> bool:
        if self.netns is None:
            return (sip_options("127.0.0.1", self.port, timeout=0.3) or "").find(" 200 ") >= 0
        res = subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", "core.uptime"],
                             capture_output=True, timeout=5, check=False)  # fmt: skip
        return res.returncode == 0

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
