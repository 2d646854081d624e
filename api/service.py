"""The service container: what the running process owns, started and stopped in order.

create_app builds one Service from Settings; its lifespan starts it and stops it. The parts it
owns (telephony, the call manager, the scheduler, the survey dispatcher) are components, in start
order, and are also reachable by name as typed attributes for the routers (no isinstance search).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from calls.component import Component, Health
from calls.event_bus import EventBus
from storage import migrate
from storage.engine import make_engine, make_session_factory

if TYPE_CHECKING:
    from api.evidence import EvidenceKeeper
    from api.metrics import Metrics
    from api.scheduler import Scheduler
    from api.sip_stack import Telephony
    from calls.manager import CallManager

log = logging.getLogger(__name__)


@dataclass
class Service:
    """Everything the process owns."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    components: list[Component] = field(default_factory=list)
    events: EventBus = field(default_factory=EventBus)
    # the parts the routers use, by name (also in `components` when running)
    telephony: Telephony | None = None
    calls: CallManager | None = None
    scheduler: Scheduler | None = None
    evidence: EvidenceKeeper | None = None
    metrics: Metrics | None = None
    loop: asyncio.AbstractEventLoop | None = None
    started: list[Component] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings) -> Service:
        """Create the engine and session factory; nothing is started yet."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
        return cls(settings=settings, engine=engine, session_factory=make_session_factory(engine))

    async def start(self, *, auto_migrate: bool = True) -> None:
        """Migrate the database (when asked) and start every component in order."""
        self.loop = asyncio.get_running_loop()
        self.settings.recordings_dir.mkdir(parents=True, exist_ok=True)
        if auto_migrate:
            migrate.upgrade(self.settings.resolved_database_url)
        for component in self.components:
            log.info("starting %s", component.name)
            await component.start()
            self.started.append(component)

    async def stop(self) -> None:
        """Stop started components in reverse order; one failing does not stop the others."""
        self.events.close()
        if self.calls is not None:  # calls cut from now on (a survey's, say) end `shutdown`
            self.calls.begin_stop()
        while self.started:
            component = self.started.pop()
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %s failed", component.name)
        self.engine.dispose()

    def readiness(self) -> dict[str, Health]:
        """Database reachable and at the code's schema, and every component healthy."""
        checks: dict[str, Health] = {"database": self._database_health()}
        for component in self.components:
            try:
                checks[component.name] = component.health()
            except Exception as exc:
                checks[component.name] = Health(False, f"health check failed: {exc}")
        return checks

    def _database_health(self) -> Health:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            current = migrate.current_revision(self.engine)
        except Exception as exc:
            return Health(False, f"unreachable: {type(exc).__name__}")
        head = migrate.head_revision()
        if current != head:
            return Health(
                False, f"schema at {current}, code expects {head}: run `linkcall db upgrade`"
            )
        return Health(True, f"schema {current}")
