"""Two nodes as two hosts (issue 16): node A, node B and the Kamailio edge each in their own
network namespace with their own address on one bridge (lab.netns), PostgreSQL reached over its
Unix socket. Inbound calls to the service number spread over both nodes; a bridge started on A
is controlled and ended through B (carried to A's own address); after SIGKILL of A the edge
takes it out, B declares it lost, and new inbound calls all reach B."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from lab import ports
from lab.edge import Edge
from lab.netns import HUB_IP, LabNet, wrap
from lab.sipp import Sipp
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import Call, CallKind
from tests.bridges.conftest import cli_token

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PG_SOCKET_DIR = "/var/run/postgresql"
LEASE_S = 3.0


def over_socket(url: str) -> str:
    """The test database's URL through PostgreSQL's Unix socket (namespaces do not share
    127.0.0.1; they share the file system)."""
    head, _, rest = url.partition("@")
    _, _, path = rest.partition("/")
    sep = "&" if "?" in path else "?"
    return f"{head}@/{path}{sep}host={PG_SOCKET_DIR.replace('/', '%2F')}"


class NsNode:
    """`python -m api serve` inside a namespace, on that namespace's address."""

    def __init__(self, ns: str, address: str, env: dict[str, str], log: Path) -> None:
        self.ns, self.address, self.env, self.log = ns, address, env, log
        self.http = ports.sip_port()
        self.sip = ports.sip_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.http}"

    def start(self) -> None:
        argv = [sys.executable, "-m", "api", "serve", "--host", self.address,
                "--port", str(self.http)]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(wrap(self.ns, argv), env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)  # fmt: skip

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(20)


class Operator:
    """HTTP requests from the hub namespace (where the edge is), with curl."""

    def __init__(self, ns: str, token: str) -> None:
        self.ns, self.token = ns, token

    def request(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        argv = ["curl", "-s", "-m", "15", "-X", method, "-w", "\n%{http_code}",
                "-H", f"Authorization: Bearer {self.token}"]  # fmt: skip
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        out = subprocess.run(wrap(self.ns, [*argv, url]), capture_output=True, text=True,
                             timeout=30, check=False).stdout  # fmt: skip
        text, _, code = out.rpartition("\n")
        try:
            return int(code or 0), json.loads(text) if text else None
        except json.JSONDecodeError:
            return int(code or 0), text

    def ready(self, node: NsNode) -> bool:
        return self.request("GET", f"{node.url}/readyz")[0] == 200


@pytest.fixture
def net() -> Iterator[LabNet]:
    with LabNet() as lab_net:
        yield lab_net


def inbound_by_node(url: str) -> Counter[str]:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            return Counter(session.scalars(select(Call.node).where(Call.kind == CallKind.INBOUND)))
    finally:
        engine.dispose()


def call_service(workdir: Path, edge: Edge, ns: str, calls: int) -> None:
    sipp = Sipp.caller(
        workdir, (HUB_IP, edge.port), "110", from_user="13800000001", media="echo",
        hold_ms=1000, calls=calls, rate=2, timeout_s=60, host=HUB_IP, netns=ns,
    )  # fmt: skip
    sipp.start()
    assert sipp.wait(60) == 0, f"{sipp.errors_text()}\n{edge.log()}"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_nodes_on_their_own_addresses_behind_the_edge(
    migrated_url: str, tmp_path: Path, net: LabNet
) -> None:
    (ns_a, ip_a), (ns_b, ip_b) = net.host("a"), net.host("b")
    pbx = Sipp.answerer(tmp_path / "pbx", calls=None, timeout_s=None, host=HUB_IP, netns=net.hub)
    db = over_socket(migrated_url)
    nodes: list[NsNode] = []
    for name, ns, address in (("node-a", ns_a, ip_a), ("node-b", ns_b, ip_b)):
        node = NsNode(ns, address, {}, tmp_path / f"{name}.log")
        node.env = {
            **os.environ,
            "LINKCALL_DATABASE_URL": db,
            "LINKCALL_DATA_DIR": str(tmp_path / name),
            "LINKCALL_SIP_LISTEN": f"{address}:{node.sip}",
            "LINKCALL_SIP_REGISTRAR": "",
            "LINKCALL_SIP_TRUNK_PEER": f"{HUB_IP}:{0}",  # set below, once the edge has a port
            "LINKCALL_EXTENSIONS_PATTERN": "^[345][0-9]{3}$",
            "LINKCALL_RTP_PORTS": "20000-20999",  # each namespace has its own ports
            "LINKCALL_DISPATCHER_SEATS": "3001",
            "LINKCALL_UNIT_CONFIRM": "false",
            "LINKCALL_NODE_NAME": name,
            "LINKCALL_NODE_URL": node.url,
            "LINKCALL_NODE_HEARTBEAT_S": "0.5",
            "LINKCALL_NODE_LEASE_S": str(LEASE_S),
        }
        nodes.append(node)
    a, b = nodes
    edge = Edge(tmp_path / "edge", [(ip_a, a.sip), (ip_b, b.sip)], (HUB_IP, pbx.port),
                listen_ip=HUB_IP, netns=net.hub)  # fmt: skip
    for node in nodes:
        node.env["LINKCALL_SIP_TRUNK_PEER"] = f"{HUB_IP}:{edge.port}"
    token = cli_token(a.env, "dispatcher")
    op = Operator(net.hub, token)
    try:
        pbx.start()
        edge.start()
        for node in nodes:
            node.start()
            deadline = time.monotonic() + 40
            while not op.ready(node):
                assert node.proc is not None and node.proc.poll() is None, node.log.read_text()
                assert time.monotonic() < deadline, node.log.read_text()[-3000:]
                time.sleep(0.5)
        edge.wait_active([a.sip, b.sip])

        # inbound calls to the service number land on both nodes
        call_service(tmp_path / "callers-1", edge, net.hub, 6)
        spread = inbound_by_node(migrated_url)
        assert spread["node-a"] >= 2 and spread["node-b"] >= 2 and sum(spread.values()) == 6

        # a bridge started on A is controlled and ended through B, carried to A's address
        status, body = op.request("POST", f"{a.url}/api/v1/bridges", {
            "caller": {"number": "3101"}, "dispatcher": {"number": "4101"},
            "unit": {"number": "5101"},
        })  # fmt: skip
        assert status == 202, body
        bid = body["id"]
        deadline = time.monotonic() + 20
        while body.get("state") != "connected" or any(
            g["state"] != "connected" for g in body["legs"]
        ):
            assert time.monotonic() < deadline, body
            time.sleep(0.3)
            body = op.request("GET", f"{b.url}/api/v1/bridges/{bid}")[1]
        status, body = op.request("POST", f"{b.url}/api/v1/bridges/{bid}/legs/unit/mute")
        assert status == 200, body
        assert next(g for g in body["legs"] if g["role"] == "unit")["muted"] is True
        status, body = op.request("POST", f"{b.url}/api/v1/bridges/{bid}/end")
        assert status == 200, body
        assert "forwarded to node node-a: 200" in b.log.read_text()

        # A dies: the edge takes it out, B declares it lost, new calls all reach B
        a.kill()
        killed = time.monotonic()
        while edge.active().get(a.sip, True):
            assert time.monotonic() - killed < 5.0, (edge.active(), edge.log())
            time.sleep(0.1)
        call_service(tmp_path / "callers-2", edge, net.hub, 6)
        after = inbound_by_node(migrated_url)
        assert after["node-a"] == spread["node-a"], after
        assert after["node-b"] == spread["node-b"] + 6, after
        deadline = killed + LEASE_S + 6
        while "node node-a lost" not in b.log.read_text():
            assert time.monotonic() < deadline, b.log.read_text()[-3000:]
            time.sleep(0.3)
    finally:
        for node in nodes:
            node.kill(signal.SIGTERM)
        edge.stop()
        pbx.stop()
