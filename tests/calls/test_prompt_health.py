"""Without its IVR prompts the service cannot ask a unit to press 1 or a citizen for a survey
answer: /readyz says so (it used to stay 200 with only a log line)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from pytest_mock import MockerFixture

from api.app import create_app
from calls.prompts import PromptError
from storage.engine import session_scope
from storage.models.auth import Role
from storage.tokens import create_token
from tests.conftest import service_settings


def test_missing_prompts_make_the_service_not_ready(tmp_path: Path, mocker: MockerFixture) -> None:
    mocker.patch(
        "calls.manager.ensure_prompts", side_effect=PromptError("espeak-ng is not installed")
    )
    app = create_app(service_settings(tmp_path))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        with session_scope(app.state.service.session_factory) as s:
            token = create_token(s, name="ops", role=Role.ADMIN, unit_code=None)
        r = client.get("/readyz", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503, r.text
    calls = r.json()["checks"]["calls"]
    assert calls["ok"] is False and "espeak-ng is not installed" in calls["detail"]
