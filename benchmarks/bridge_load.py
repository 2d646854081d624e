"""Benchmark: N concurrent three-way bridges through the API, SIPp answering every leg.

Starts the lab's Kamailio with a trunk route for 3xxx (caller), 4xxx (dispatcher) and 5xxx
(unit) to one SIPp answerer (answer delay ``--answer-delay-ms``, streams a 1 kHz µ-law tone
on every call), then for each N of ``--calls``: a fresh linkcall service in its own process
(``python -m api serve``, LINKCALL_* environment, registered to Kamailio as 1000), N bridges
created through ``POST /api/v1/bridges`` at ``--rate`` per second, each bridge's setup time
(the POST sent -> the last of its three legs reported connected on ``GET /api/v1/events``),
all N held for ``--hold`` seconds while the service's CPU and RSS are read from /proc by PID,
the RTP the service sends captured for ``--capture-s`` seconds (dumpcap, analysed afterwards
with tshark), then every bridge ended through the API and every recording checked finalised.

The bridge dials in two stages (the dispatcher, then caller and unit together), so the
answer delay is paid twice: "overhead" is the setup time minus twice the answer delay.

    .venv/bin/python benchmarks/bridge_load.py --calls 10,50,100 --rate 10 --hold 30

Needs root (Kamailio), kamailio, sipp, sox, dumpcap and tshark. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from benchmarks.bridge_report import BridgeRun, RunResult, print_result, summary_table
from benchmarks.bridge_sse import EventLog, follow
from benchmarks.loadlab import LoadLab
from benchmarks.procstat import Sampler, threads
from benchmarks.pyspy import Profile
from benchmarks.rtpstats import RtpCapture

ROLES = ("dispatcher", "caller", "unit")
SETUP_SLACK_S = 30.0
END_TIMEOUT_S = 60.0
END_PHASE_S = 240.0


def numbers(i: int) -> dict[str, dict[str, str]]:
    """The bridge's three numbers: caller 3xxx, dispatcher 4xxx, unit 5xxx."""
    return {
        "caller": {"number": f"{3000 + i}"},
        "dispatcher": {"number": f"{4000 + i}"},
        "unit": {"number": f"{5000 + i}"},
    }


async def create(client: httpx.AsyncClient, run: BridgeRun) -> None:
    run.t0 = time.monotonic()
    run.wall0 = time.time()
    try:
        resp = await client.post("/api/v1/bridges", json=numbers(run.index))
    except httpx.HTTPError as exc:
        run.error = f"POST failed: {type(exc).__name__}"
        return
    run.post_s = time.monotonic() - run.t0
    if resp.status_code != 202:
        run.error = f"POST {resp.status_code}: {resp.text[:200]}"
        return
    run.bridge_id = resp.json()["id"]


async def get_json(client: httpx.AsyncClient, path: str) -> Any:
    """The JSON body of a GET, or a short description of why there is none."""
    try:
        resp = await client.get(path)
    except httpx.HTTPError as exc:
        return f"GET failed: {type(exc).__name__}"
    if resp.status_code != 200:
        return f"GET {resp.status_code}"
    return resp.json()


def settled(log: EventLog, run: BridgeRun) -> bool:
    """All three legs connected, or the bridge failed/ended, or it never got an id."""
    if run.bridge_id is None:
        return run.error is not None
    if all(log.leg_connected(run.bridge_id, r) for r in ROLES):
        return True
    return log.call_state(run.bridge_id) in ("failed", "ended")


async def wait_until(log: EventLog, pred: object, timeout: float) -> bool:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while not pred():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        log.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(log.changed.wait(), min(left, 1.0))
    return True


async def gather_limited(coros: list[Awaitable[object]], limit: int = 20) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[object]) -> None:
        async with sem:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def end_and_check(
    client: httpx.AsyncClient,
    log: EventLog,
    runs: list[BridgeRun],
    result: RunResult,
    concurrency: int,
) -> None:
    """End every bridge (``concurrency`` requests in flight), check each recording finalised."""
    live = [r for r in runs if r.bridge_id is not None]
    # bridges the service created although their POST failed (e.g. timed out): end them too
    listed = await get_json(client, "/api/v1/calls?limit=500")
    known = {r.bridge_id for r in live}
    if isinstance(listed, list):
        for call in listed:
            if call["id"] not in known and call.get("state") in ("dialing", "connected"):
                result.orphans += 1
                live.append(BridgeRun(-1, bridge_id=call["id"]))
    t_end = time.monotonic()

    async def end(run: BridgeRun) -> None:
        try:
            resp = await client.post(f"/api/v1/bridges/{run.bridge_id}/end")
        except httpx.HTTPError as exc:
            result.end_errors.append(f"{type(exc).__name__}")
            return
        if resp.status_code != 200:
            result.end_errors.append(f"HTTP {resp.status_code}")

    await gather_limited([end(r) for r in live], limit=concurrency)
    await wait_until(
        log,
        lambda: all(log.call_state(r.bridge_id or "") in ("ended", "failed") for r in live),
        END_TIMEOUT_S,
    )
    result.end_all_s = time.monotonic() - t_end

    async def check(run: BridgeRun) -> None:
        body = await get_json(client, f"/api/v1/bridges/{run.bridge_id}")
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
            meta = await get_json(client, f"/api/v1/recordings/{rec}")
            if isinstance(meta, str):
                run.recording = meta
            else:
                run.recording = str(meta.get("state"))
                run.recording_ok = bool(meta.get("health", {}).get("ok"))
            if run.recording == "finalised" or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.5)

    await gather_limited([check(r) for r in live], limit=10)


async def failure_reasons(client: httpx.AsyncClient, runs: list[BridgeRun], log: EventLog) -> None:
    """For bridges that did not connect all three legs: why (bridge and leg end reasons)."""
    for run in runs:
        if run.bridge_id is not None and run.setup_s is None:
            run.error = f"{log.call_state(run.bridge_id)} (no details)"

    async def explain(run: BridgeRun) -> None:
        body = await get_json(client, f"/api/v1/bridges/{run.bridge_id}")
        if isinstance(body, str):
            run.error = f"{log.call_state(run.bridge_id or '')} (details: {body})"
            return
        legs = [
            f"{leg['role']}={leg['state']}"
            + (f"({leg['end_reason']})" if leg.get("end_reason") else "")
            + "".join(f"[{a['result']}/{a['sip_status']}]" for a in leg.get("attempts", []))
            for leg in body.get("legs", [])
        ]
        run.error = f"{body.get('state')}:{body.get('end_reason')} " + " ".join(legs)

    failed = [r for r in runs if r.bridge_id is not None and r.setup_s is None]
    await gather_limited([explain(r) for r in failed], limit=10)


async def phase(what: str, coro: Awaitable[None], budget: float, result: RunResult) -> None:
    """Run one step of the benchmark with a time budget (a stalled service must not hang it)."""
    try:
        await asyncio.wait_for(coro, budget)
    except TimeoutError:
        result.notes.append(f"{what}: gave up after {budget:g} s (service not answering)")


@dataclass(frozen=True)
class Options:
    """How one N is run (from the command line)."""

    rate: float
    hold: float
    capture_s: float
    end_concurrency: int
    profile: str | None  # None, "all" (every thread's samples) or "gil" (the GIL holder's)


def profiler(lab: LoadLab, name: str, mode: str | None) -> Profile | None:
    if mode is None:
        return None
    prof = Profile(lab.workdir / f"profile-{name}.raw", gil=mode == "gil")
    prof.start(lab.service_pid)
    return prof


def finish_profile(prof: Profile | None) -> None:
    if prof is not None:
        prof.stop()
        print(prof.summary(), flush=True)


async def run_calls(lab: LoadLab, n: int, opt: Options) -> RunResult:
    rate, hold, capture_s = opt.rate, opt.hold, opt.capture_s
    missing = [tool for tool in ("dumpcap", "tshark") if shutil.which(tool) is None]
    if capture_s > 0 and missing:
        print(f"RTP not captured: {', '.join(missing)} not installed", flush=True)
        capture_s = 0.0
    tokens = lab.start_service()
    pid = lab.service_pid
    loads = os.getloadavg()
    load = " ".join(f"{x:.2f}" for x in loads)
    print(f"service pid {pid}, log {lab.service_log}; machine load average {load}", flush=True)
    sampler = Sampler(pid)
    sampler.start()
    await asyncio.sleep(3.0)
    result = RunResult(n=n, rate=rate, hold_s=hold, answer_delay_ms=lab.answer_delay_ms)
    result.load = loads[0]
    result.idle = sampler.window(time.monotonic() - 3.0, time.monotonic())
    log = EventLog()
    headers = {"Authorization": f"Bearer {tokens['dispatcher']}"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=lab.base_url, headers=headers, timeout=30.0, limits=limits
    ) as client:
        sse = asyncio.create_task(follow(client, log))
        try:
            await asyncio.wait_for(log.connected.wait(), 10.0)
            runs = [BridgeRun(i) for i in range(n)]
            prof = profiler(lab, f"{n}-setup", opt.profile)
            t_start = time.monotonic()
            posts = []
            for run in runs:
                delay = t_start + run.index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                posts.append(asyncio.create_task(create(client, run)))
            await asyncio.gather(*posts)
            budget = 2 * lab.answer_delay_ms / 1000 + SETUP_SLACK_S
            await wait_until(log, lambda: all(settled(log, r) for r in runs), budget)
            t_ready = time.monotonic()
            result.setup_window = sampler.window(t_start, t_ready)
            finish_profile(prof)
            for run in runs:
                run.measure(log, ROLES)
            await phase("failure details", failure_reasons(client, runs, log), 60, result)
            result.threads = threads(pid)
            prof = profiler(lab, f"{n}-hold", opt.profile)
            t_hold = time.monotonic()
            await asyncio.sleep(hold)
            result.hold = sampler.window(t_hold, time.monotonic())
            finish_profile(prof)
            result.still_up = sum(
                1
                for r in runs
                if r.bridge_id
                and r.setup_s is not None
                and log.call_state(r.bridge_id) == "connected"
            )
            if capture_s > 0:
                cap = RtpCapture(lab.workdir / f"rtp-{n}.pcapng", lab.rtp.lo, lab.rtp.hi)
                await asyncio.to_thread(cap.capture, capture_s)
            await phase(
                "end and check recordings",
                end_and_check(client, log, runs, result, opt.end_concurrency),
                END_PHASE_S,
                result,
            )
            result.runs = runs
            if capture_s > 0:
                result.rtp = await asyncio.to_thread(cap.analyse)
        finally:
            sse.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await sse
            sampler.stop()
    lab.stop_service()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--calls", default="10,50,100", help="comma-separated N values (default 10,50,100)"
    )
    p.add_argument("--rate", type=float, default=10.0, help="bridges created per second")
    p.add_argument("--hold", type=float, default=30.0, help="seconds all N are held")
    p.add_argument("--answer-delay-ms", type=int, default=200, help="SIPp answer delay")
    p.add_argument("--capture-s", type=float, default=5.0, help="RTP capture seconds (0: none)")
    p.add_argument(
        "--end-concurrency",
        type=int,
        default=1,
        help="POST /end requests in flight at once (default 1; see docs/benchmarks.md)",
    )
    p.add_argument(
        "--postgres",
        metavar="URL",
        default=None,
        help="run the service on PostgreSQL (a fresh schema per N), e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/test; default: SQLite in the data dir",
    )
    p.add_argument(
        "--profile",
        nargs="?",
        const="all",
        choices=("all", "gil"),
        help="py-spy the service during setup and hold (skews the figures a little); "
        "`--profile gil`: only the thread holding the GIL at each sample",
    )
    p.add_argument(
        "--nodes",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: two nodes on one PostgreSQL behind the Kamailio edge (benchmarks/bridge_nodes.py;"
        " needs --postgres)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: temp)")
    return p.parse_args(argv)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(x) for x in args.calls.split(",") if x.strip()]
    signal.signal(signal.SIGTERM, _sigterm)
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bridge-load-")))
        else:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        if args.nodes == 2:
            from benchmarks.bridge_nodes import main_nodes  # imports this module

            if not args.postgres:
                raise SystemExit("--nodes 2 needs --postgres URL (the nodes share one database)")
            return main_nodes(
                workdir, counts, rate=args.rate, hold=args.hold,
                answer_delay_ms=args.answer_delay_ms, postgres_url=args.postgres,
                end_concurrency=args.end_concurrency,
            )  # fmt: skip
        lab = LoadLab(workdir, args.answer_delay_ms, postgres_url=args.postgres)
        stack.callback(lab.close)
        lab.start_peers()
        results: list[RunResult] = []
        opt = Options(args.rate, args.hold, args.capture_s, args.end_concurrency, args.profile)
        for n in counts:
            print(
                f"\n== N={n}: {n} bridges at {args.rate:g}/s, hold {args.hold:g} s ==", flush=True
            )
            result = asyncio.run(run_calls(lab, n, opt))
            print_result(result)
            results.append(result)
        print()
        print(summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
