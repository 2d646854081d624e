"""A request's answer comes after its commit: what a client was told is stored, is stored.

FastAPI ends a `yield` dependency after the response was sent unless it is function-scoped, so
the request's session (api/deps.py) once committed after the client already had its 201: the
next request could miss what was just created (a console test saw 404 "incident not found"
right after creating the incident), and a failed commit lost data the client was told was
stored. Both tests run against a real uvicorn server and slow down, or break, only the commit
of the session that wrote the incident."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from storage.models.incidents import Incident
from tests.conftest import LiveService

BODY = {"reporter_number": "13700000001", "category": "non_police", "type": "utility",
        "summary": "小区停电"}  # fmt: skip


def _on_incident_commit(action: Any) -> Iterator[None]:
    """Run `action` in the commit of any session that flushed a new incident."""

    def flushed(session: Session, _ctx: Any, _instances: Any) -> None:
        if any(isinstance(o, Incident) for o in session.new):
            session.info["wrote_incident"] = True

    def committing(session: Session) -> None:
        if session.info.pop("wrote_incident", False):
            action()

    event.listen(Session, "before_flush", flushed)
    event.listen(Session, "before_commit", committing)
    try:
        yield
    finally:
        event.remove(Session, "before_flush", flushed)
        event.remove(Session, "before_commit", committing)


@pytest.fixture
def slow_commit() -> Iterator[None]:
    yield from _on_incident_commit(lambda: time.sleep(0.5))


@pytest.fixture
def failing_commit() -> Iterator[None]:
    def fail() -> None:
        raise OSError("disk full (injected)")

    yield from _on_incident_commit(fail)


def _desk(live: LiveService) -> httpx.Client:
    return httpx.Client(base_url=live.base_url, headers=live.auth("dispatcher"), timeout=10)


def test_what_a_201_named_is_found_by_the_next_request(
    live_api: LiveService, slow_commit: None
) -> None:
    with _desk(live_api) as http:
        for _ in range(3):
            created = http.post("/api/v1/incidents", json=BODY)
            assert created.status_code == 201, created.text
            found = http.get(f"/api/v1/incidents/{created.json()['id']}")
            assert found.status_code == 200, found.text
            assert found.json()["summary"] == "小区停电"


def test_a_commit_that_fails_is_an_error_to_the_client_and_nothing_half_stored(
    live_api: LiveService, failing_commit: None
) -> None:
    with _desk(live_api) as http:
        created = http.post("/api/v1/incidents", json=BODY)
        assert created.status_code == 500, created.text
        assert "id" not in created.json()
        listed = http.get("/api/v1/incidents")
        assert listed.status_code == 200 and listed.json() == []
