"""create_app: the FastAPI application and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.calls import CallManager
from api.ivr_callers import TelephonyDutyCheckCaller
from api.jobs import duty_check
from api.jobs.surveys import SurveyDispatcher, SurveyDispatcherComponent
from api.problems import install_problem_handlers
from api.routers import admin, bridges, calls, console, events, health, recordings
from api.routers import incidents as incidents_router
from api.routers import rosters as rosters_router
from api.routers import surveys as surveys_router
from api.routers import units as units_router
from api.scheduler import ReminderSchedule, Scheduler
from api.service import Service
from api.settings import Settings
from api.survey_caller import TelephonySurveyCaller
from api.survey_settings import SurveySettings
from api.telephony import Telephony

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, service: Service | None = None) -> FastAPI:
    """Build the app. The lifespan starts what the service owns and stops it on shutdown."""
    settings = settings or Settings()
    svc = service or Service.build(settings)
    survey_settings = SurveySettings()
    # Start order = dependency order; the service stops them in reverse, so the jobs that place
    # calls (scheduler, survey dispatcher) stop before the call manager and the telephony.
    if not any(c.name == "sip" for c in svc.components):
        telephony = Telephony(settings)
        manager = CallManager(svc, telephony, node=settings.node_name or None)
        svc.components.append(telephony)
        svc.components.append(manager)
        duty_check.set_caller(TelephonyDutyCheckCaller(manager))
        survey_caller = TelephonySurveyCaller(
            manager, ring_timeout_s=settings.ring_timeout_caller_s
        )
        dispatcher = SurveyDispatcher(
            svc.session_factory, survey_caller, survey_settings,
            zone=settings.timezone, events=svc.events,
        )  # fmt: skip
    else:
        dispatcher = None
    if not any(c.name == "scheduler" for c in svc.components):
        day, _, hhmm = settings.roster_reminder.partition(" ")
        hour, minute = (int(x) for x in hhmm.split(":"))
        svc.components.append(
            Scheduler(
                database_url=settings.resolved_database_url,
                timezone=settings.timezone,
                reminder=ReminderSchedule(day_of_week=day, hour=hour, minute=minute),
            )
        )
    if dispatcher is not None and survey_settings.enabled:
        svc.components.append(SurveyDispatcherComponent(dispatcher))

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
    )
    app.state.service = svc
    app.state.survey_settings = survey_settings
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(admin.router)
    app.include_router(events.router)
    app.include_router(bridges.router)
    app.include_router(calls.router)
    app.include_router(recordings.router)
    app.include_router(units_router.router)
    app.include_router(rosters_router.router)
    app.include_router(incidents_router.router)
    app.include_router(surveys_router.router)
    app.include_router(console.router)
    return app
