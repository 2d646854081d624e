"""Benchmark: the bridge load of ``bridge_load.py`` spread over two linkcall nodes (issue 16).

``bridge_load.py --nodes 2`` runs this. Two services (``python -m api serve``, separate
processes) on one PostgreSQL database (created fresh per N, dropped afterwards), in trunk mode
behind the lab's Kamailio running docker/kamailio/edge.cfg; every leg goes out through the edge
to one SIPp answerer (answer delay ``--answer-delay-ms``, a 1 kHz µ-law tone on every call).
Bridges are created through ``POST /api/v1/bridges`` alternately on node A and node B at
``--rate`` per second; each bridge's setup time is taken from the event stream of the node that
created it; every bridge is ended through its own node and its recording checked finalised.

Per node: setup time, POST latency, failures, CPU and RSS (from /proc by PID). For PostgreSQL:
transactions committed in the benchmark's database (``pg_stat_database``) per second and per
bridge, its connections, and the CPU of the whole PostgreSQL server (the postmaster's own and
reaped children's time plus its live children's, from /proc; the server is shared with
whatever else runs on the machine, so this is an upper bound).

No RTP capture here (``--capture-s`` is ignored; the single-node run measures RTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, make_url, text

from benchmarks.bridge_load import (
    END_TIMEOUT_S,
    ROLES,
    SETUP_SLACK_S,
    create,
    gather_limited,
    get_json,
    settled,
    wait_until,
)
from benchmarks.bridge_report import BridgeRun, RunResult, pct, print_result
from benchmarks.bridge_sse import EventLog, follow
from benchmarks.loadlab import HOST, TONE_HZ, free_tcp_port, service_rtp_range
from benchmarks.procstat import TICKS, Sampler, Window, cpu_seconds
from lab import ports
from lab.audio import make_ulaw_raw
from lab.edge import Edge
from lab.process import ManagedProcess, ProcessError
from lab.sipp import Sipp

# caller 3xxx, dispatcher 4xxx, unit 5xxx: dialled by the nodes in trunk mode, sent by the edge
# to the SIPp answerer (the "PBX")
EXTENSIONS = "^[345][0-9]{3}$"
NODE_NAMES = ("node-a", "node-b")


class PgDatabase:
    """A fresh database on the PostgreSQL server for one run, and its figures."""

    def __init__(self, url: str) -> None:
        self.admin_url = url
        self.name: str | None = None

    def create(self) -> str:
        self.name = f"bench_nodes_{secrets.token_hex(5)}"
        self._admin(f'CREATE DATABASE "{self.name}"')
        return make_url(self.admin_url).set(database=self.name).render_as_string(False)

    def drop(self) -> None:
        if self.name is not None:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.name = None

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def stats(self) -> PgSample:
        """Commits, rollbacks and connections of this database, the server's CPU seconds."""
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                commits, rollbacks, backends = conn.execute(
                    text(
                        "SELECT xact_commit, xact_rollback, numbackends FROM pg_stat_database "
                        "WHERE datname = :name"
                    ),
                    {"name": self.name},
                ).one()
                checkpointer = conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
                ).scalar_one()
        finally:
            engine.dispose()
        return PgSample(
            time.monotonic(), int(commits), int(rollbacks), int(backends), server_cpu(checkpointer)
        )


@dataclass(frozen=True)
class PgSample:
    """PostgreSQL's counters at one moment."""

    t: float
    commits: int
    rollbacks: int
    backends: int
    cpu_s: float  # the whole server (see server_cpu)


def server_cpu(child_pid: int) -> float:
    """CPU seconds of the PostgreSQL server `child_pid` belongs to: the postmaster's own time
    and that of its exited children (cutime/cstime), plus the time of its live children."""
    with open(f"/proc/{child_pid}/stat") as f:
        postmaster = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{postmaster}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    total = sum(int(x) for x in rest[11:15]) / TICKS
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) != postmaster:
                    continue
            total += cpu_seconds(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total


@dataclass(frozen=True)
class PgWindow:
    """PostgreSQL between two samples."""

    seconds: float
    commits: int
    backends: int
    cpu_pct: float  # of one core, the whole server

    @classmethod
    def between(cls, a: PgSample, b: PgSample) -> PgWindow:
        span = max(b.t - a.t, 1e-9)
        return cls(span, b.commits - a.commits, b.backends, 100 * (b.cpu_s - a.cpu_s) / span)


class Node:
    """One linkcall service process in trunk mode behind the edge."""

    def __init__(self, name: str, workdir: Path, sip_port: int, rtp: ports.RtpRange) -> None:
        self.name, self.workdir, self.sip_port, self.rtp = name, workdir, sip_port, rtp
        self.http_port = 0
        self.proc: ManagedProcess | None = None
        self.env: dict[str, str] = {}

    def configure(self, run_dir: Path, database_url: str, edge_port: int) -> None:
        self.http_port = free_tcp_port()
        self.env = {
            "LINKCALL_DATABASE_URL": database_url,
            "LINKCALL_DATA_DIR": str(run_dir / self.name),
            "LINKCALL_SIP_LISTEN": f"{HOST}:{self.sip_port}",
            "LINKCALL_SIP_REGISTRAR": "",
            "LINKCALL_SIP_TRUNK_PEER": f"{HOST}:{edge_port}",
            "LINKCALL_EXTENSIONS_PATTERN": EXTENSIONS,
            "LINKCALL_DIAL_RATE": "off",  # the benchmark places 100 bridges from one token
            "LINKCALL_RTP_PORTS": f"{self.rtp.lo}-{self.rtp.hi}",
            "LINKCALL_RING_TIMEOUT_DISPATCHER_S": "30",
            "LINKCALL_RING_TIMEOUT_CALLER_S": "30",
            "LINKCALL_RING_TIMEOUT_UNIT_S": "30",
            "LINKCALL_UNIT_CONFIRM": "false",  # the load's units are SIPp answerers: no key
            "LINKCALL_LOG_LEVEL": "WARNING",
            "LINKCALL_NODE_NAME": self.name,
            "LINKCALL_NODE_URL": self.base_url,
        }

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def pid(self) -> int:
        if self.proc is None or self.proc.pid is None:
            raise ProcessError(f"{self.name} not started")
        return self.proc.pid

    def start(self, run_dir: Path) -> None:
        self.proc = ManagedProcess(
            self.name,
            [sys.executable, "-m", "api", "serve", "--port", str(self.http_port)],
            run_dir / f"{self.name}.log",
            cwd=run_dir,
            env=self.env,
        )
        self.proc.start()
        self.proc.wait_ready(self._ready, 60.0, "readiness")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(20.0)
            self.proc = None


class NodesLab:
    """The SIPp answerer as the PBX, the Kamailio edge, two nodes restarted per measurement."""

    def __init__(self, workdir: Path, answer_delay_ms: int, postgres_url: str) -> None:
        self.workdir = workdir
        self.answer_delay_ms = answer_delay_ms
        self.pg = PgDatabase(postgres_url)
        self.sipp_port = ports.sip_port()
        self.sipp_media = ports.rtp_range(4)
        rtp = service_rtp_range(3000)
        half = (rtp.hi - rtp.lo + 1) // 2
        ranges = [ports.RtpRange(rtp.lo, rtp.lo + half - 1), ports.RtpRange(rtp.lo + half, rtp.hi)]
        self.nodes = [
            Node(name, workdir, ports.sip_port(), r)
            for name, r in zip(NODE_NAMES, ranges, strict=True)
        ]
        self.edge = Edge(
            workdir / "edge", [n.sip_port for n in self.nodes], self.sipp_port, log_level=1
        )
        self.sipp: Sipp | None = None
        self._runs = 0

    def start_peers(self) -> None:
        ulaw = make_ulaw_raw(self.workdir / "tone.ulaw", TONE_HZ, seconds=10.0, amplitude=0.3)
        self.sipp = Sipp.answerer(
            self.workdir / "sipp",
            media="stream",
            ulaw=ulaw,
            answer_delay_ms=self.answer_delay_ms,
            calls=None,
            port=self.sipp_port,
            media_port=self.sipp_media.lo,
            timeout_s=None,
        )
        self.sipp.start()
        self.edge.start()

    def start_nodes(self) -> str:
        """A fresh database and both nodes; returns a dispatcher token (valid on both)."""
        self._runs += 1
        run_dir = self.workdir / f"run-{self._runs}"
        run_dir.mkdir(parents=True, exist_ok=True)
        url = self.pg.create()
        for node in self.nodes:
            node.configure(run_dir, url, self.edge.port)
        token = create_token(self.nodes[0].env)  # migrates the database first
        for node in self.nodes:
            node.start(run_dir)
        self.edge.wait_active([n.sip_port for n in self.nodes])
        return token

    def stop_nodes(self) -> None:
        try:
            for node in self.nodes:
                node.stop()
        finally:
            self.pg.drop()

    def close(self) -> None:
        try:
            self.stop_nodes()
        finally:
            try:
                if self.sipp is not None:
                    self.sipp.stop()
            finally:
                self.edge.stop()


def create_token(env: dict[str, str]) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "api", "tokens", "create", "--role", "dispatcher"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if res.returncode != 0:
        raise ProcessError(f"tokens create failed ({res.returncode}): {res.stderr[-2000:]}")
    return res.stdout.strip().splitlines()[-1]


@dataclass
class NodeRun:
    """One node's share of a run: its client, event log, sampler and bridges."""

    node: Node
    client: httpx.AsyncClient
    log: EventLog = field(default_factory=EventLog)
    sampler: Sampler | None = None
    result: RunResult | None = None
    end_errors: list[str] = field(default_factory=list)


@dataclass
class NodesResult:
    """Everything measured for one N over both nodes."""

    n: int
    load: tuple[float, float, float]
    per_node: dict[str, RunResult]
    pg_setup: PgWindow | None = None
    pg_hold: PgWindow | None = None
    pg_total_commits: int = 0  # POST of the first bridge -> every recording checked
    notes: list[str] = field(default_factory=list)


async def end_and_check(nr: NodeRun, runs: list[BridgeRun], concurrency: int) -> float:
    """End this node's bridges through it, wait for the ends, check each recording finalised;
    returns the seconds until every bridge had ended."""
    live = [r for r in runs if r.bridge_id is not None]
    t_end = time.monotonic()

    async def end(run: BridgeRun) -> None:
        try:
            resp = await nr.client.post(f"/api/v1/bridges/{run.bridge_id}/end")
        except httpx.HTTPError as exc:
            nr.end_errors.append(type(exc).__name__)
            return
        if resp.status_code != 200:
            nr.end_errors.append(f"HTTP {resp.status_code}")

    await gather_limited([end(r) for r in live], limit=concurrency)
    await wait_until(
        nr.log,
        lambda: all(nr.log.call_state(r.bridge_id or "") in ("ended", "failed") for r in live),
        END_TIMEOUT_S,
    )
    took = time.monotonic() - t_end

    async def check(run: BridgeRun) -> None:
        body = await get_json(nr.client, f"/api/v1/bridges/{run.bridge_id}")
        if isinstance(body, str):
            run.recording = body
            return
        run.final_state = body.get("state")
        rec = body.get("recording_id")
        if rec is None:
            run.recording = "none"
            return
        deadline = time.monotonic() + END_TIMEOUT_S
        while True:
            meta = await get_json(nr.client, f"/api/v1/recordings/{rec}")
            if isinstance(meta, str):
                run.recording = meta
            else:
                run.recording = str(meta.get("state"))
                run.recording_ok = bool(meta.get("health", {}).get("ok"))
            if run.recording == "finalised" or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)

    await gather_limited([check(r) for r in live], limit=10)
    return took


async def run_calls(
    lab: NodesLab, n: int, rate: float, hold: float, end_concurrency: int
) -> NodesResult:
    token = lab.start_nodes()
    loads = os.getloadavg()
    print(
        "nodes "
        + ", ".join(f"{x.name} pid {x.pid}" for x in lab.nodes)
        + f"; load average {' '.join(f'{x:.2f}' for x in loads)}",
        flush=True,
    )
    result = NodesResult(n, loads, {})
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with contextlib.AsyncExitStack() as stack:
        nrs = []
        for node in lab.nodes:
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=node.base_url, headers=headers, timeout=30.0, limits=limits
                )
            )
            nr = NodeRun(node, client, sampler=Sampler(node.pid))
            assert nr.sampler is not None
            nr.sampler.start()
            stack.callback(nr.sampler.stop)
            nrs.append(nr)
        await asyncio.sleep(3.0)
        for nr in nrs:
            assert nr.sampler is not None
            nr.result = RunResult(
                n=0, rate=rate / len(nrs), hold_s=hold, answer_delay_ms=lab.answer_delay_ms
            )
            nr.result.load = loads[0]
            nr.result.idle = nr.sampler.window(time.monotonic() - 3.0, time.monotonic())
        sses = [asyncio.create_task(follow(nr.client, nr.log)) for nr in nrs]
        try:
            for nr in nrs:
                await asyncio.wait_for(nr.log.connected.wait(), 10.0)
            runs = [BridgeRun(i) for i in range(n)]
            owner = {r.index: nrs[r.index % len(nrs)] for r in runs}
            pg0 = await asyncio.to_thread(lab.pg.stats)
            t_start = time.monotonic()
            posts = []
            for run in runs:
                delay = t_start + run.index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                posts.append(asyncio.create_task(create(owner[run.index].client, run)))
            await asyncio.gather(*posts)
            budget = 2 * lab.answer_delay_ms / 1000 + SETUP_SLACK_S
            await wait_until(
                nrs[0].log,  # woken by node A's events; the predicate reads both logs
                lambda: all(settled(owner[r.index].log, r) for r in runs),
                budget,
            )
            t_ready = time.monotonic()
            pg1 = await asyncio.to_thread(lab.pg.stats)
            result.pg_setup = PgWindow.between(pg0, pg1)
            for run in runs:
                run.measure(owner[run.index].log, ROLES)
                if run.bridge_id is not None and run.setup_s is None and run.error is None:
                    run.error = f"{owner[run.index].log.call_state(run.bridge_id)} (not connected)"
            t_hold = time.monotonic()
            await asyncio.sleep(hold)
            pg2 = await asyncio.to_thread(lab.pg.stats)
            result.pg_hold = PgWindow.between(pg1, pg2)
            for nr in nrs:
                assert nr.result is not None and nr.sampler is not None
                mine = [r for r in runs if owner[r.index] is nr]
                nr.result.n, nr.result.runs = len(mine), mine
                nr.result.setup_window = nr.sampler.window(t_start, t_ready)
                nr.result.hold = nr.sampler.window(t_hold, time.monotonic())
                nr.result.still_up = sum(
                    1
                    for r in mine
                    if r.bridge_id and r.setup_s is not None
                    and nr.log.call_state(r.bridge_id) == "connected"
                )  # fmt: skip
            ends = [
                end_and_check(nr, [r for r in runs if owner[r.index] is nr], end_concurrency)
                for nr in nrs
            ]
            took = await asyncio.wait_for(asyncio.gather(*ends), 240)
            pg3 = await asyncio.to_thread(lab.pg.stats)
            result.pg_total_commits = pg3.commits - pg0.commits
            for nr, seconds in zip(nrs, took, strict=True):
                assert nr.result is not None
                nr.result.end_all_s = seconds
                nr.result.end_errors = nr.end_errors
                result.per_node[nr.node.name] = nr.result
        except TimeoutError:
            result.notes.append("ending and checking gave up after 240 s")
        finally:
            for task in sses:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await task
    lab.stop_nodes()
    return result


def combined(result: NodesResult) -> RunResult:
    """Both nodes as one: every bridge; CPU and RSS added up."""
    parts = list(result.per_node.values())
    out = RunResult(
        n=result.n,
        rate=sum(p.rate for p in parts),
        hold_s=parts[0].hold_s,
        answer_delay_ms=parts[0].answer_delay_ms,
    )
    out.load = result.load[0]
    out.runs = sorted((r for p in parts for r in p.runs), key=lambda r: r.index)
    for attr in ("idle", "setup_window", "hold"):
        windows = [getattr(p, attr) for p in parts]
        if all(w is not None for w in windows):
            setattr(out, attr, add_windows(windows))
    out.still_up = sum(p.still_up for p in parts)
    out.end_all_s = max(p.end_all_s for p in parts)
    out.end_errors = [e for p in parts for e in p.end_errors]
    return out


def add_windows(windows: list[Window]) -> Window:
    return Window(
        seconds=max(w.seconds for w in windows),
        cpu_pct=sum(w.cpu_pct for w in windows),
        peak_cpu_pct=sum(w.peak_cpu_pct for w in windows),
        rss_kib=sum(w.rss_kib for w in windows),
        peak_rss_kib=sum(w.peak_rss_kib for w in windows),
    )


def nodes_table(results: list[NodesResult]) -> str:
    """One row per node and one for both, per N (markdown)."""
    head = (
        "| N | node | load 1/5/15 | failed | setup p50 / p95 / max (ms) | p95 beyond 2x delay (ms) "
        "| POST p95 (ms) | CPU setup / hold (% core) | RSS idle -> held (MiB) "
        "| recordings finalised |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for res in results:
        if not res.per_node:
            lines.append(f"| {res.n} | (no result: {'; '.join(res.notes)}) |")
            continue
        rows = [*res.per_node.items(), ("both", combined(res))]
        for name, r in rows:
            s = r.setups_ms
            posts = [1000 * x.post_s for x in r.runs if x.post_s is not None]
            cpu = (
                f"{r.setup_window.cpu_pct:.0f} / {r.hold.cpu_pct:.0f}"
                if r.setup_window and r.hold
                else "n/a"
            )
            rss = (
                f"{r.idle.rss_kib / 1024:.0f} -> {r.hold.rss_kib / 1024:.0f}"
                if r.idle and r.hold
                else "n/a"
            )
            lines.append(
                f"| {res.n} | {name} | {' '.join(f'{x:.1f}' for x in res.load)} | {len(r.failed)} "
                f"| {pct(s, 0.5):.0f} / {pct(s, 0.95):.0f} / {max(s, default=float('nan')):.0f} "
                f"| {r.overhead_p95_ms:.0f} | {pct(posts, 0.95):.0f} | {cpu} | {rss} "
                f"| {r.finalised} / {sum(1 for x in r.runs if x.bridge_id)} |"
            )
    return "\n".join(lines)


def pg_table(results: list[NodesResult]) -> str:
    """PostgreSQL's figures per N (markdown)."""
    head = (
        "| N | commits/s setup / hold | commits per bridge (whole run) | connections "
        "| PG server CPU setup / hold (% core) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        s, h = r.pg_setup, r.pg_hold
        if s is None or h is None:
            continue
        lines.append(
            f"| {r.n} | {s.commits / s.seconds:.0f} / {h.commits / h.seconds:.0f} "
            f"| {r.pg_total_commits / max(r.n, 1):.0f} | {h.backends} "
            f"| {s.cpu_pct:.0f} / {h.cpu_pct:.0f} |"
        )
    return "\n".join(lines)


def main_nodes(
    workdir: Path,
    counts: list[int],
    *,
    rate: float,
    hold: float,
    answer_delay_ms: int,
    postgres_url: str,
    end_concurrency: int,
) -> int:
    lab = NodesLab(workdir, answer_delay_ms, postgres_url)
    results: list[NodesResult] = []
    try:
        lab.start_peers()
        for n in counts:
            print(f"\n== N={n} over 2 nodes: {n} bridges at {rate:g}/s, hold {hold:g} s ==")
            res = asyncio.run(run_calls(lab, n, rate, hold, end_concurrency))
            for name, part in res.per_node.items():
                print(f"-- {name}")
                print_result(part)
            for note in res.notes:
                print(f"NOTE: {note}")
            results.append(res)
            sys.stdout.flush()
    finally:
        lab.close()
    print()
    print(nodes_table(results))
    print()
    print(pg_table(results))
    return 0
