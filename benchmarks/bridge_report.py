"""Per-bridge measurements of the bridge load benchmark and the tables it prints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.bridge_sse import EventLog
from benchmarks.procstat import Window
from benchmarks.rtpstats import RtpSummary


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


@dataclass
class BridgeRun:
    """One bridge: when its POST went out, when each leg was reported connected."""

    index: int
    t0: float = 0.0  # monotonic, just before the POST
    wall0: float = 0.0  # the same instant, wall clock (to compare with the service's `at`)
    post_s: float | None = None
    bridge_id: str | None = None
    error: str | None = None
    setup_s: float | None = None  # POST sent -> the last leg's "connected" event received
    setup_server_s: float | None = None  # POST sent -> the service's `at` of that event
    first_stage_s: float | None = None  # POST sent -> dispatcher connected
    second_stage_s: float | None = None  # dispatcher connected -> caller and unit connected
    lags_s: list[float] = field(default_factory=list)  # each connected event: received - `at`
    final_state: str | None = None
    recording: str | None = None
    recording_ok: bool = False

    def measure(self, log: EventLog, roles: Sequence[str]) -> None:
        if self.bridge_id is None:
            return
        seen = {r: log.leg_connected(self.bridge_id, r) for r in roles}
        if any(s is None for s in seen.values()):
            return
        last = max((s for s in seen.values() if s is not None), key=lambda s: s.received)
        self.setup_s = last.received - self.t0
        if last.at is not None:
            self.setup_server_s = last.at.timestamp() - self.wall0
        self.lags_s = [
            (s.received - self.t0) - (s.at.timestamp() - self.wall0)
            for s in seen.values()
            if s is not None and s.at is not None
        ]
        disp = seen.get("dispatcher")
        if disp is not None:
            self.first_stage_s = disp.received - self.t0
            self.second_stage_s = last.received - disp.received


@dataclass
class RunResult:
    """Everything measured for one N."""

    n: int
    rate: float
    hold_s: float
    answer_delay_ms: int
    runs: list[BridgeRun] = field(default_factory=list)
    idle: Window | None = None
    setup_window: Window | None = None
    hold: Window | None = None
    threads: int = 0
    still_up: int = 0
    end_all_s: float = 0.0
    end_errors: list[str] = field(default_factory=list)
    load: float = 0.0  # the machine's 1-minute load average when the run started
    notes: list[str] = field(default_factory=list)
    orphans: int = 0  # bridges the service created although the POST failed
    rtp: RtpSummary | None = None

    @property
    def setups_ms(self) -> list[float]:
        return [1000 * r.setup_s for r in self.runs if r.setup_s is not None]

    @property
    def failed(self) -> list[BridgeRun]:
        return [r for r in self.runs if r.setup_s is None]

    @property
    def finalised(self) -> int:
        return sum(1 for r in self.runs if r.recording == "finalised")

    @property
    def overhead_p95_ms(self) -> float:
        return pct(self.setups_ms, 0.95) - 2 * self.answer_delay_ms

    @property
    def rss_per_bridge_kib(self) -> float:
        if self.idle is None or self.hold is None or not self.n:
            return float("nan")
        return (self.hold.rss_kib - self.idle.rss_kib) / self.n


def _ms(values: Sequence[float]) -> str:
    top = max(values, default=float("nan"))
    return f"p50 {pct(values, 0.5):.0f} / p95 {pct(values, 0.95):.0f} / max {top:.0f} ms"


def print_result(r: RunResult) -> None:
    """The detailed figures of one N."""
    ok = [x for x in r.runs if x.setup_s is not None]
    print(f"created {sum(1 for x in r.runs if x.bridge_id)} / {r.n}, connected {len(ok)}")
    posts = [1000 * x.post_s for x in r.runs if x.post_s is not None]
    print(f"POST /bridges latency     {_ms(posts)}")
    print(f"setup (client, SSE)       {_ms(r.setups_ms)}")
    server = [1000 * x.setup_server_s for x in ok if x.setup_server_s is not None]
    print(f"setup (service clock)     {_ms(server)}")
    lags = [1000 * lag for x in ok for lag in x.lags_s]
    print(f"event delivery lag        {_ms(lags)}  (each leg's connected event: received - at)")
    delay = r.answer_delay_ms
    first = [1000 * x.first_stage_s - delay for x in ok if x.first_stage_s is not None]
    second = [1000 * x.second_stage_s - delay for x in ok if x.second_stage_s is not None]
    print(f"stage 1 beyond delay      {_ms(first)}  (POST -> dispatcher connected)")
    print(f"stage 2 beyond delay      {_ms(second)}  (dispatcher -> caller+unit connected)")
    print(
        f"overhead p95              {r.overhead_p95_ms:.0f} ms beyond 2 x {delay} ms answer delay"
        f"  (goal < 250 ms: {'met' if r.overhead_p95_ms < 250 and not r.failed else 'NOT met'})"
    )
    reasons = Counter((x.error or "no reason") for x in r.failed)
    for reason, count in reasons.most_common(10):
        print(f"  failed x{count}: {reason}")
    for name, w in (("idle", r.idle), ("setup", r.setup_window), ("hold", r.hold)):
        if w is not None:
            print(
                f"CPU/RSS {name:<6} {w.cpu_pct:5.1f} % of a core "
                f"(peak 1 s: {w.peak_cpu_pct:5.1f} %), RSS {w.rss_kib / 1024:.1f} MiB "
                f"(peak {w.peak_rss_kib / 1024:.1f}) over {w.seconds:.0f} s"
            )
    print(f"RSS per bridge            {r.rss_per_bridge_kib:.0f} KiB; threads {r.threads}")
    print(
        f"still connected after hold {r.still_up} / {len(ok)}; all ended in {r.end_all_s:.1f} s"
        + (f"; POST /end errors: {Counter(r.end_errors)}" if r.end_errors else "")
        + (f"; {r.orphans} bridges created although their POST failed" if r.orphans else "")
    )
    bad = [x for x in r.runs if x.bridge_id and x.recording != "finalised"]
    print(
        f"recordings finalised      {r.finalised} / {sum(1 for x in r.runs if x.bridge_id)}"
        f" (health ok {sum(1 for x in r.runs if x.recording_ok)})"
        + (f"; not: {Counter(x.recording for x in bad)}" if bad else "")
    )
    print(f"RTP sent by the service   {r.rtp.line() if r.rtp else 'not captured'}")
    for note in r.notes:
        print(f"NOTE: {note}")


def summary_table(results: Sequence[RunResult]) -> str:
    """One row per N (markdown)."""
    head = (
        "| N | load | rate/s | failed | setup p50 / p95 / max (ms) | p95 beyond 2x delay (ms) "
        "| CPU setup / hold (% core) | RSS idle -> held (MiB) | RSS/bridge (KiB) "
        "| recordings finalised | RTP lost % / max gap (ms) / max jitter (ms) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        s = r.setups_ms
        rtp = (
            f"{r.rtp.lost_pct:.2f} / {r.rtp.max_delta_ms:.0f} / {r.rtp.max_jitter_ms:.1f}"
            if r.rtp
            else "n/a"
        )
        idle = r.idle.rss_kib / 1024 if r.idle else float("nan")
        held = r.hold.rss_kib / 1024 if r.hold else float("nan")
        cpu_setup = r.setup_window.cpu_pct if r.setup_window else float("nan")
        cpu_hold = r.hold.cpu_pct if r.hold else float("nan")
        lines.append(
            f"| {r.n} | {r.load:.1f} | {r.rate:g} | {len(r.failed)} "
            f"| {pct(s, 0.5):.0f} / {pct(s, 0.95):.0f} / {max(s, default=float('nan')):.0f} "
            f"| {r.overhead_p95_ms:.0f} | {cpu_setup:.0f} / {cpu_hold:.0f} "
            f"| {idle:.0f} -> {held:.0f} | {r.rss_per_bridge_kib:.0f} "
            f"| {r.finalised} / {sum(1 for x in r.runs if x.bridge_id)} | {rtp} |"
        )
    return "\n".join(lines)
