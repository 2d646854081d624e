"""The Kamailio edge (docker/kamailio/edge.cfg, issue 16): two linkcall nodes in trunk mode on
one PostgreSQL behind Kamailio's dispatcher module. Inbound calls to the service number land on
both nodes; after node A is SIGKILLed the edge's OPTIONS probe takes it out within seconds and
every new inbound call goes to node B."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from lab import ports
from lab.edge import Edge
from lab.sipp import Sipp
from storage.engine import make_engine, make_session_factory, session_scope
from storage.models.call_records import Call, CallKind
from tests.bridges.test_crash import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEAT = "3001"


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Sipp]:
    """The PBX behind the edge: answers the seat the nodes ring for each inbound call."""
    sipp = Sipp.answerer(tmp_path / "pbx", calls=None, timeout_s=None)
    sipp.start()
    try:
        yield sipp
    finally:
        sipp.stop()


def inbound_by_node(url: str) -> Counter[str]:
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            nodes = session.scalars(select(Call.node).where(Call.kind == CallKind.INBOUND))
            return Counter(nodes)
    finally:
        engine.dispose()


def call_service(workdir: Path, edge: Edge, calls: int) -> None:
    """`calls` callers dial the service number through the edge; each is answered (a seat
    picks up), holds a second and hangs up."""
    sipp = Sipp.caller(
        workdir, ("127.0.0.1", edge.port), "110", from_user="13800000001", media="echo",
        hold_ms=1000, calls=calls, rate=2, timeout_s=60,
    )  # fmt: skip
    sipp.start()
    code = sipp.wait(60)
    assert code == 0, f"{sipp.errors_text()}\n{edge.log()}"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_inbound_calls_spread_over_nodes_and_a_dead_node_is_taken_out(
    migrated_url: str, tmp_path: Path, pbx: Sipp
) -> None:
    sip_a, sip_b = ports.sip_port(), ports.sip_port()
    edge = Edge(tmp_path / "edge", [sip_a, sip_b], pbx.port)
    ranges = [ports.rtp_range(100), ports.rtp_range(100)]
    procs: list[ServiceProcess] = []
    try:
        edge.start()
        for name, sip, rtp in (("node-a", sip_a, ranges[0]), ("node-b", sip_b, ranges[1])):
            http = ports.sip_port()
            env = {
                **os.environ,
                "LINKCALL_DATABASE_URL": migrated_url,
                "LINKCALL_DATA_DIR": str(tmp_path / name),
                "LINKCALL_SIP_LISTEN": f"127.0.0.1:{sip}",
                "LINKCALL_SIP_REGISTRAR": "",
                "LINKCALL_SIP_TRUNK_PEER": f"127.0.0.1:{edge.port}",
                "LINKCALL_RTP_PORTS": f"{rtp.lo}-{rtp.hi}",
                "LINKCALL_DISPATCHER_SEATS": SEAT,
                "LINKCALL_NODE_NAME": name,
                "LINKCALL_NODE_URL": f"http://127.0.0.1:{http}",
            }
            procs.append(ServiceProcess(env, http, tmp_path / f"{name}.log"))
            procs[-1].start()
        a, _b = procs
        edge.wait_active([sip_a, sip_b])

        call_service(tmp_path / "callers-1", edge, 6)
        spread = inbound_by_node(migrated_url)
        assert spread["node-a"] >= 2 and spread["node-b"] >= 2, spread
        assert sum(spread.values()) == 6, spread

        a.kill()  # SIGKILL
        killed = time.monotonic()
        while edge.active().get(sip_a, True):
            assert time.monotonic() - killed < 5.0, (edge.active(), edge.log())
            time.sleep(0.1)
        taken_out_s = time.monotonic() - killed
        print(f"node A taken out of the dispatcher {taken_out_s:.1f} s after SIGKILL")

        call_service(tmp_path / "callers-2", edge, 6)
        after = inbound_by_node(migrated_url)
        assert after["node-a"] == spread["node-a"], after  # nothing more to the dead node
        assert after["node-b"] == spread["node-b"] + 6, after
    finally:
        for proc in procs:
            proc.kill(signal.SIGTERM)
        edge.stop()
        for rtp in ranges:
            ports.release(rtp)
