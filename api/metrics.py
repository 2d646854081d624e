"""Prometheus metrics on LINKCALL_METRICS_LISTEN (host:port; off when empty).

Everything is read when /metrics is scraped, from the metrics listener's own thread: the call
manager's active calls and legs and its plain counters (calls/stats.py), the media engine's
tick-lag histogram and lost-packet count, the database for recordings and surveys, and the
evidence keeper for the disk. Nothing here adds work to a call or to the 20 ms media tick
beyond the tick's own bisect-and-add lag measurement (telephony/media/ticker.py).

Label values are kinds, roles, results, states, route templates and HTTP status classes:
never a phone number, a person or an id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calls.component import Health
from storage.models.call_records import CallKind, Recording, RecordingState
from storage.models.reminders import ReminderStatus, RosterReminderCall
from storage.models.surveys import Survey, SurveyStatus

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from api.service import Service

log = logging.getLogger(__name__)

ROLES = ("caller", "dispatcher", "unit", "callee")
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceCollector(Collector):
    """The service's state as metric families, computed at scrape time."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        yield from self._calls()
        yield from self._telephony()
        yield from self._database()
        yield from self._evidence()

    def _calls(self) -> Iterator[Metric]:
        manager = self.svc.calls
        calls = GaugeMetricFamily(
            "linkcall_calls_active", "Calls this node carries now, by kind", labels=["kind"]
        )
        legs = GaugeMetricFamily(
            "linkcall_legs_active", "Connected call legs on this node, by role", labels=["role"]
        )
        attempts = CounterMetricFamily(
            "linkcall_dial_attempts",
            "Numbers dialled and how each attempt ended, by role and result",
            labels=["role", "result"],
        )
        problems = CounterMetricFamily(
            "linkcall_recording_problems",
            "Recording problems found (write errors, low disk, verification findings), by kind",
            labels=["kind"],
        )
        by_kind: dict[str, int] = {}
        by_role: dict[str, int] = {}
        if manager is not None:
            by_kind, by_role = manager.active()
            for (role, result), n in sorted(manager.stats.snapshot().items()):
                attempts.add_metric([role, result], n)
            for kind, n in sorted(manager.stats.recording_problems.copy().items()):
                problems.add_metric([kind], n)
        for kind in sorted({*(k.value for k in CallKind), *by_kind}):
            calls.add_metric([kind], by_kind.get(kind, 0))
        for role in sorted({*ROLES, *by_role}):
            legs.add_metric([role], by_role.get(role, 0))
        yield calls
        yield legs
        yield attempts
        yield problems

    def _telephony(self) -> Iterator[Metric]:
        telephony = self.svc.telephony
        if telephony is None:
            return
        registered = GaugeMetricFamily(
            "linkcall_sip_registered",
            "1 when the SIP user agent is registered (trunk mode: when the trunk is configured)",
        )
        ok = telephony.ua.registered if not telephony.trunk_mode else telephony.health().ok
        registered.add_metric([], 1.0 if ok else 0.0)
        yield registered
        ticker = telephony.media.ticker
        lag = ticker.lag
        counts = list(lag.counts)
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, n in zip(lag.bounds, counts, strict=False):
            cumulative += n
            buckets.append((repr(float(bound)), cumulative))
        cumulative += counts[-1]
        buckets.append(("+Inf", cumulative))
        hist = HistogramMetricFamily(
            "linkcall_media_tick_lag_seconds",
            "How late each 20 ms media tick fired after its deadline",
            buckets=buckets,
            sum_value=lag.total,
        )
        yield hist
        skipped = CounterMetricFamily(
            "linkcall_media_ticks_skipped", "Media ticks skipped because the event loop was blocked"
        )
        skipped.add_metric([], ticker.stats.skipped)
        yield skipped
        lost = CounterMetricFamily(
            "linkcall_rtp_packets_lost", "RTP packets lost on received streams (RFC 3550 A.3)"
        )
        lost.add_metric([], telephony.media.packets_lost_total())
        yield lost

    def _database(self) -> Iterator[Metric]:
        recordings = GaugeMetricFamily(
            "linkcall_recordings_total", "Recordings stored, by state", labels=["state"]
        )
        surveys = GaugeMetricFamily("linkcall_surveys", "Surveys, by status", labels=["status"])
        reminders = GaugeMetricFamily(
            "linkcall_reminders",
            "Roster reminder calls, by where each stands (pending, calling, or how it ended)",
            labels=["outcome"],
        )
        try:
            with self.svc.session_factory() as session:
                rec_counts = dict(
                    session.execute(
                        select(Recording.state, func.count()).group_by(Recording.state)
                    ).all()
                )
                survey_counts = dict(
                    session.execute(
                        select(Survey.status, func.count()).group_by(Survey.status)
                    ).all()
                )
                reminder_counts = dict(
                    session.execute(
                        select(RosterReminderCall.status, func.count()).group_by(
                            RosterReminderCall.status
                        )
                    ).all()
                )
        except Exception as exc:
            log.warning("metrics: database not readable: %s", type(exc).__name__)
            return
        for state in RecordingState:
            recordings.add_metric([state.value], rec_counts.get(state, 0))
        for status in SurveyStatus:
            surveys.add_metric([status.value], survey_counts.get(status, 0))
        for outcome in ReminderStatus:
            reminders.add_metric([outcome.value], reminder_counts.get(outcome, 0))
        yield recordings
        yield surveys
        yield reminders

    def _evidence(self) -> Iterator[Metric]:
        keeper = self.svc.evidence
        if keeper is None:
            return
        disk = keeper.disk
        if disk is not None:
            free = GaugeMetricFamily(
                "linkcall_disk_free_bytes", "Free bytes on the file system of the recordings"
            )
            free.add_metric([], disk.free_bytes)
            yield free
            low = GaugeMetricFamily(
                "linkcall_disk_low", "1 when free disk is under LINKCALL_DISK_MIN_FREE_MB"
            )
            low.add_metric([], 1.0 if disk.low else 0.0)
            yield low
        verify = keeper.last_verify
        if verify is not None and verify.finished_at is not None:
            last = GaugeMetricFamily(
                "linkcall_recording_verify_last_run_timestamp_seconds",
                "When the last hash verification of every finalised recording finished",
            )
            last.add_metric([], verify.finished_at.timestamp())
            yield last
            bad = GaugeMetricFamily(
                "linkcall_recording_verify_failed",
                "Recordings with a problem in the last hash verification",
            )
            bad.add_metric([], len(verify.bad))
            yield bad


class HttpTiming:
    """ASGI middleware: time to the response's start, by method, route template and status
    class (a streamed response, such as the event stream, counts until its headers)."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        def observe(status: int) -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.histogram.labels(scope["method"], template, f"{status // 100}xx").observe(
                time.perf_counter() - started
            )

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                observe(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        except Exception:
            observe(500)
            raise


class Metrics:
    """The metrics registry and its listener (a Component when LINKCALL_METRICS_LISTEN is set)."""

    name = "metrics"

    def __init__(self, svc: Service, addr: tuple[str, int] | None) -> None:
        self.addr = addr
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServiceCollector(svc))
        self.http = Histogram(
            "linkcall_http_request_seconds",
            "HTTP API time to response start, by method, route template and status class",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self._server: WSGIServer | None = None
        self._problem: str | None = None

    async def start(self) -> None:
        if self.addr is None:
            return
        host, port = self.addr
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:  # monitoring must not keep an emergency service from starting
            self._problem = f"cannot listen on {host}:{port}: {exc}"
            log.error("metrics %s", self._problem)
            return
        self._server = server
        log.info("metrics on http://%s:%d/metrics", host, port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def health(self) -> Health:
        if self.addr is None:
            return Health(True, "off")
        if self._server is None:
            return Health(False, self._problem or "not listening")
        return Health(True, f"listening on {self.addr[0]}:{self.addr[1]}")
