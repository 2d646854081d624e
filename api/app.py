"""create_app: the FastAPI application and its lifespan."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import Depends, FastAPI

from api.body_limit import BodyLimit
from api.docs import install_docs
from api.evidence import EvidenceKeeper
from api.logs import install_access_log_masking
from api.metrics import HttpTiming, Metrics
from api.nul_guard import refuse_nul_characters
from api.problems import install_problem_handlers
from api.rate_limit import DialLimiter
from api.routers import (
    admin,
    bridges,
    call_history,
    console,
    events,
    health,
    ops,
    recordings,
)
from api.routers import duty_checks as duty_checks_router
from api.routers import incidents as incidents_router
from api.routers import numbers as numbers_router
from api.routers import rosters as rosters_router
from api.routers import surveys as surveys_router
from api.routers import units as units_router
from api.scheduler import ReminderSchedule, Scheduler
from api.service import Service
from api.settings import Settings
from api.sip_stack import Telephony
from callflows.bridge import BridgeSettings
from callflows.events import Role
from callflows.unit_answer import UnitAnswerRules
from calls import duty_check_job
from calls.component import Component
from calls.duty_check_caller import TelephonyDutyCheckCaller
from calls.duty_check_plans import (
    DutyCheckPlanner,
    DutyCheckPlannerComponent,
    DutyCheckPlanSettings,
)
from calls.event_store import SharedEventStream
from calls.manager import CallManager, CallSettings
from calls.nodes import NodeWatch
from calls.reminder_caller import TelephonyReminderCaller
from calls.reminder_job import ReminderDispatcher, ReminderDispatcherComponent
from calls.survey_caller import TelephonySurveyCaller
from calls.survey_job import SurveyDispatcher, SurveyDispatcherComponent
from calls.webhook import WebhookComponent, WebhookSender, WebhookSettings
from registry.duty_schedule import parse_schedule
from storage.events import listener_dsn

log = logging.getLogger(__name__)


def bridge_settings(settings: Settings) -> BridgeSettings:
    """Dial order, timeouts and the check of a unit's answer (extension, key 1) of bridges."""
    timeouts = {
        Role.DISPATCHER: settings.ring_timeout_dispatcher_s,
        Role.CALLER: settings.ring_timeout_caller_s,
        Role.UNIT: settings.ring_timeout_unit_s,
    }
    answer = UnitAnswerRules(
        confirm=settings.unit_confirm,
        timeout_s=settings.unit_confirm_timeout_s,
        extension_delay_s=settings.extension_delay_ms / 1000,
        extension_timeout_s=settings.unit_confirm_extension_timeout_s,
    )
    order = (
        BridgeSettings.all_at_once()
        if settings.bridge_dial_order == "all_at_once"
        else BridgeSettings()
    )
    return dataclasses.replace(
        order,
        ring_timeouts_s=timeouts,
        dial_deadline_s=settings.bridge_dial_deadline_s,
        unit_answer=answer,
    )


def call_settings(settings: Settings) -> CallSettings:
    """What the call manager needs, from the service settings."""
    return CallSettings(
        node=settings.node,
        recordings_root=settings.recordings_dir,
        data_dir=settings.data_dir,
        dial_policy=settings.dial_policy,
        bridge=bridge_settings(settings),
        dispatcher_seats=tuple(settings.dispatcher_seat_list),
        inbound_ring_deadline_s=settings.inbound_ring_deadline_s,
        media_timeout_s=settings.media_timeout_s or None,
        recover_calls=settings.recover_calls,
        recover_timeout_s=settings.recover_timeout_s,
    )


def webhook_settings(settings: Settings) -> WebhookSettings:
    """Where the outbound webhook sends events, from the service settings."""
    return WebhookSettings(
        url=settings.webhook_url,
        secret=settings.webhook_secret,
        node=settings.node,
        timeout_s=settings.webhook_timeout_s,
        poll_s=settings.webhook_poll_s,
        retry_s=settings.webhook_retry_s,
        max_delay_s=settings.webhook_max_delay_s,
    )


def duty_check_plan_settings(settings: Settings) -> DutyCheckPlanSettings:
    """The 查岗 schedule and how this node places the checks."""
    return DutyCheckPlanSettings(
        rules=parse_schedule(settings.duty_check_schedule),
        zone=settings.zone,
        node=settings.node,
        policy=settings.dial_policy,
        timeout_s=settings.duty_check_ring_timeout_s,
        poll_s=settings.duty_check_poll_s,
        lease_s=settings.survey_lease_s,
    )


def call_jobs(svc: Service, manager: CallManager) -> list[Component]:
    """The jobs that place calls from this node (surveys, roster reminders, scheduled 查岗),
    each registered on the service's one scheduler."""
    settings = svc.settings
    assert svc.scheduler is not None
    jobs: list[Component] = []
    if settings.survey_enabled:
        survey_caller = TelephonySurveyCaller(
            manager, svc.session_factory, ring_timeout_s=settings.ring_timeout_caller_s
        )
        surveys = SurveyDispatcherComponent(
            SurveyDispatcher(
                svc.session_factory,
                survey_caller,
                settings.survey_run_settings(),
                publish=svc.events.publish,
            )
        )
        reminder_caller = TelephonyReminderCaller(
            manager, svc.session_factory, ring_timeout_s=settings.ring_timeout_unit_s
        )
        reminders = ReminderDispatcherComponent(
            ReminderDispatcher(
                svc.session_factory,
                reminder_caller,
                settings.survey_run_settings(),
                publish=svc.events.publish,
            )
        )
        surveys.register(svc.scheduler.add_interval_job)
        reminders.register(svc.scheduler.add_interval_job)
        jobs += [surveys, reminders]
    if settings.duty_check_schedule.strip():
        checker = TelephonyDutyCheckCaller(
            manager, ring_timeout_s=settings.duty_check_ring_timeout_s
        )
        planner = DutyCheckPlannerComponent(
            DutyCheckPlanner(svc.session_factory, checker, duty_check_plan_settings(settings))
        )
        planner.register(svc.scheduler.add_interval_job)
        jobs.append(planner)
    return jobs


def compose(svc: Service) -> None:
    """Build the service's components in start order (the service stops them in reverse, so
    the jobs that place calls stop before the call manager and the telephony)."""
    settings = svc.settings
    if svc.scheduler is None:
        day, _, hhmm = settings.roster_reminder.partition(" ")
        hour, minute = (int(x) for x in hhmm.split(":"))
        svc.scheduler = Scheduler(
            database_url=settings.resolved_database_url,
            timezone=settings.timezone,
            reminder=ReminderSchedule(day_of_week=day, hour=hour, minute=minute),
        )
    jobs: list[Component] = []
    if svc.engine.dialect.name == "postgresql" and not any(
        isinstance(c, SharedEventStream) for c in svc.components
    ):
        stream = SharedEventStream(
            svc.events,
            svc.session_factory,
            node=settings.node,
            listen_dsn=listener_dsn(settings.resolved_database_url),
            retention=timedelta(hours=settings.event_retention_h),
        )
        svc.components.insert(0, stream)  # started first, stopped last: it stores the last events
        svc.scheduler.add_interval_job(
            stream.prune, seconds=3600, job_id="events.prune", name="prune stored events"
        )
    if svc.telephony is None:
        telephony = Telephony(settings)
        manager = CallManager(
            call_settings(settings),
            ua=telephony.ua,
            media=telephony.media,
            session_factory=svc.session_factory,
            publish=svc.events.publish,
        )
        svc.telephony, svc.calls = telephony, manager
        svc.components += [telephony, manager]
        svc.components.append(
            NodeWatch(
                manager,
                svc.session_factory,
                node=settings.node,
                url=settings.node_url or None,
                heartbeat_s=settings.node_heartbeat_s,
                lease_s=settings.node_lease_s,
            )
        )
        duty_check_job.set_caller(
            TelephonyDutyCheckCaller(manager, ring_timeout_s=settings.duty_check_ring_timeout_s),
            settings.dial_policy,
        )
        jobs = call_jobs(svc, manager)
    if svc.evidence is None and svc.calls is not None:
        hour, minute = (int(x) for x in settings.evidence_jobs_at.split(":"))
        svc.evidence = EvidenceKeeper(
            svc.session_factory,
            settings.recordings_dir,
            retention_days=settings.recording_retention_days,
            min_free_mb=settings.disk_min_free_mb,
            stats=svc.calls.stats,
            publish=svc.events.publish,
            daily_at=(hour, minute),
        )
        svc.evidence.register(svc.scheduler)
        svc.components.append(svc.evidence)
    if settings.webhook_url:
        webhook = WebhookComponent(WebhookSender(svc.session_factory, webhook_settings(settings)))
        webhook.register(svc.scheduler.add_interval_job)
        jobs.append(webhook)
    if svc.scheduler not in svc.components:
        svc.components.append(svc.scheduler)
    svc.components += jobs
    if svc.metrics is None:
        svc.metrics = Metrics(svc, settings.metrics_addr)
        svc.components.append(svc.metrics)


def create_app(settings: Settings | None = None, *, service: Service | None = None) -> FastAPI:
    """Build the app. The lifespan starts what the service owns and stops it on shutdown."""
    settings = settings or Settings()
    svc = service or Service.build(settings)
    compose(svc)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await svc.start()
        log.info("linkcall ready (database %s)", svc.engine.url.get_backend_name())
        try:
            yield
        finally:
            await svc.stop()

    app = FastAPI(
        title="linkcall",
        version="0.1.0",
        description="Three-way bridged calls, recordings, the duty-phone registry and callback "
        "surveys for a county 110 command center. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's own pages load their assets from a CDN: see api/docs.py
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api_docs else None,
        dependencies=[Depends(refuse_nul_characters)],  # U+0000 anywhere: 422 (api/nul_guard.py)
    )
    app.state.service = svc
    app.state.dial_limiter = DialLimiter(settings.dial_rates)
    app.add_middleware(BodyLimit, max_bytes=settings.http_max_body_bytes)
    install_problem_handlers(app)
    install_access_log_masking()
    assert svc.metrics is not None
    app.add_middleware(HttpTiming, histogram=svc.metrics.http)
    if settings.api_docs:
        install_docs(app)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(events.router)
    app.include_router(bridges.router)
    app.include_router(call_history.router)
    app.include_router(recordings.router)
    app.include_router(ops.router)
    app.include_router(units_router.router)
    app.include_router(rosters_router.router)
    app.include_router(numbers_router.router)
    app.include_router(duty_checks_router.router)
    app.include_router(incidents_router.router)
    app.include_router(surveys_router.router)
    app.include_router(console.router)
    return app
