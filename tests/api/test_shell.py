"""The API shell: health, OpenAPI, auth and the one error format."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.app import create_app
from storage.engine import session_scope
from storage.models.auth import Role
from storage.tokens import create_token
from tests.conftest import ApiHarness, service_settings

PROBLEM = "application/problem+json"


def _is_problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    return body


def test_health_and_readiness(api: ApiHarness) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["ok"] is True


def test_openapi_docs_are_served(api: ApiHarness) -> None:
    assert api.client.get("/docs").status_code == 200
    spec = api.client.get("/openapi.json").json()
    assert "/api/v1/me" in spec["paths"]


def test_requests_without_a_token_get_401_problem(api: ApiHarness) -> None:
    body = _is_problem(api.client.get("/api/v1/me"), 401)
    assert "Bearer" in body["detail"]


def test_a_wrong_token_gets_401_with_a_challenge(api: ApiHarness) -> None:
    resp = api.client.get("/api/v1/me", headers={"Authorization": "Bearer lc_nope_nope"})
    _is_problem(resp, 401)
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_each_role_sees_itself(api: ApiHarness) -> None:
    resp = api.client.get("/api/v1/me", headers=api.auth("unit"))
    assert resp.json() == {"name": "unit U01", "role": "unit", "unit_code": "U01"}


def test_wrong_role_gets_403_problem(api: ApiHarness) -> None:
    for role in ("dispatcher", "unit", "supervisor"):
        resp = api.client.post(
            "/api/v1/tokens", headers=api.auth(role), json={"name": "x", "role": "admin"}
        )
        _is_problem(resp, 403)
    _is_problem(api.client.get("/api/v1/audit", headers=api.auth("dispatcher")), 403)


def test_malformed_json_gets_422_problem_and_creates_nothing(api: ApiHarness) -> None:
    headers = {**api.auth("admin"), "Content-Type": "application/json"}
    body = _is_problem(
        api.client.post("/api/v1/tokens", headers=headers, content=b"{not json"), 422
    )
    assert body["errors"]
    body = _is_problem(
        api.client.post(
            "/api/v1/tokens", headers=api.auth("admin"), json={"name": "x", "role": "janitor"}
        ),
        422,
    )
    assert any(e["field"].endswith("role") for e in body["errors"])
    audit = api.client.get("/api/v1/audit", headers=api.auth("admin")).json()
    assert audit == []


def test_admin_creates_a_token_that_works_and_is_audited(api: ApiHarness) -> None:
    resp = api.client.post(
        "/api/v1/tokens", headers=api.auth("admin"), json={"name": "desk 7", "role": "dispatcher"}
    )
    assert resp.status_code == 201
    token = resp.json()["token"]
    me = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["name"] == "desk 7"
    audit = api.client.get("/api/v1/audit", headers=api.auth("supervisor")).json()
    assert [(a["action"], a["actor"]) for a in audit] == [("token.create", "admin")]


def test_unknown_paths_are_problems_too(api: ApiHarness) -> None:
    _is_problem(api.client.get("/api/v1/nothing-here"), 404)
    _is_problem(api.client.delete("/healthz"), 405)


def test_readiness_fails_when_the_schema_is_behind(api: ApiHarness) -> None:
    from sqlalchemy import text

    with api.session_factory() as s:  # type: ignore[operator]
        s.execute(text("UPDATE alembic_version SET version_num = 'old'"))
        s.commit()
    body = _is_problem(api.client.get("/readyz", headers=api.auth("dispatcher")), 503)
    assert "linkcall db upgrade" in body["checks"]["database"]["detail"]


def test_the_roster_reminder_time_comes_from_the_settings(tmp_path: Path) -> None:
    app = create_app(service_settings(tmp_path, roster_reminder="thu 09:30"))  # type: ignore[arg-type]
    with TestClient(app) as client:
        with session_scope(app.state.service.session_factory) as s:
            token = create_token(s, name="ops", role=Role.SUPERVISOR, unit_code=None)
        auth = {"Authorization": f"Bearer {token}"}
        detail = client.get("/readyz", headers=auth).json()["checks"]["scheduler"]["detail"]
    when = datetime.fromisoformat(detail.rsplit("at ", 1)[1])
    assert (when.isoweekday(), when.hour, when.minute) == (4, 9, 30), detail
    with pytest.raises(ValidationError):
        service_settings(tmp_path, roster_reminder="friday 3pm")
