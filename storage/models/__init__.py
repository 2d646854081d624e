"""All linkcall models, imported here so metadata (and Alembic) sees every table."""

from storage.models.auth import ApiToken, AuditEntry

__all__ = ["ApiToken", "AuditEntry"]
