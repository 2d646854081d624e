"""FastAPI dependency aliases (the `Annotated` style of the FastAPI template)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.service import Service
from storage.engine import session_scope


def get_service(request: Request) -> Service:
    """The service container built by create_app."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_session(service: ServiceDep) -> Iterator[Session]:
    """One database session per request; rolled back on error, always closed."""
    with session_scope(service.session_factory) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
