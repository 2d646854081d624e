"""All linkcall models, imported here so metadata (and Alembic) sees every table."""

from storage.models.auth import ApiToken, AuditEntry
from storage.models.call_records import Attempt, Call, Leg, Recording  # noqa: F401
from storage.models.events import StoredEvent  # noqa: F401
from storage.models.incidents import Incident, IncidentTransition  # noqa: F401
from storage.models.nodes import Node  # noqa: F401
from storage.models.registry import DutyCheck, RegistryNotification, Roster, Unit  # noqa: F401
from storage.models.reminders import (  # noqa: F401
    PlannedDutyCheck,
    RosterReminderAttempt,
    RosterReminderCall,
    WebhookOutbox,
)
from storage.models.surveys import Survey, SurveyAttempt  # noqa: F401

__all__ = ["ApiToken", "AuditEntry"]
