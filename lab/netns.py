"""A private network of network namespaces for lab tests that need hosts with their own
addresses (several linkcall nodes behind one SIP edge, issue 16).

``LabNet(prefix)`` creates a hub namespace holding a Linux bridge with the address
``10.77.0.1/24`` and, per ``host(name)``, one more namespace joined to the bridge by a veth pair
with the next address (``10.77.0.11``, ``.12``, ...). Nothing is added to the machine's own
network namespace: every address lives inside a namespace created here, so parallel runs can
use the same subnet. ``wrap(ns, argv)`` runs a command inside a namespace; ``close()`` deletes
every namespace created (the veths and the bridge go with them). Processes started inside must
be stopped by their PIDs first. Needs root and iproute2.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass, field

SUBNET = "10.77.0"
HUB_IP = f"{SUBNET}.1"


def ip(*args: str) -> None:
    """Run ``ip ARGS``; raise with its error output if it fails."""
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")


def wrap(ns: str, argv: list[str]) -> list[str]:
    """``argv`` run inside network namespace ``ns`` (``ip netns exec`` execs it: same PID)."""
    return ["ip", "netns", "exec", ns, *argv]


@dataclass
class LabNet:
    """The hub namespace with its bridge, and the hosts joined to it."""

    prefix: str = "lc"
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (ns, address)
    _created: list[str] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{self.prefix}-{self.tag}-hub"

    def open(self) -> LabNet:
        """Create the hub namespace: loopback up, bridge br0 with HUB_IP."""
        self._add_ns(self.hub)
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "addr", "add", f"{HUB_IP}/24", "dev", "br0")
        ip("-n", self.hub, "link", "set", "br0", "up")
        return self

    def host(self, name: str) -> tuple[str, str]:
        """A new namespace joined to the bridge; returns (namespace, address)."""
        ns = f"{self.prefix}-{self.tag}-{name}"
        address = f"{SUBNET}.{11 + len(self.hosts)}"
        self._add_ns(ns)
        # both ends created in the host namespace, then the hub end moved to the hub
        ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p-{name}")
        ip("-n", ns, "link", "set", f"p-{name}", "netns", self.hub)
        ip("-n", self.hub, "link", "set", f"p-{name}", "master", "br0")
        ip("-n", self.hub, "link", "set", f"p-{name}", "up")
        ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        self.hosts[name] = (ns, address)
        return ns, address

    def _add_ns(self, ns: str) -> None:
        ip("netns", "add", ns)
        self._created.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")

    def close(self) -> None:
        """Delete every namespace created here (stop the processes inside first)."""
        errors = []
        for ns in reversed(self._created):
            try:
                ip("netns", "del", ns)
            except RuntimeError as exc:
                errors.append(str(exc))
        self._created.clear()
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> LabNet:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
