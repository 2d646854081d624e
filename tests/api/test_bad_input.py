"""Wrong API input found by fuzzing the OpenAPI schema (schemathesis, by hand): each request
here was answered 500 on PostgreSQL, SQLite or both. Now each gets a 422 problem that names the
field, and nothing is stored; on both databases alike."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from storage.engine import session_scope
from storage.models.auth import Role
from storage.tokens import create_token
from tests.conftest import ApiHarness, service_settings

PROBLEM = "application/problem+json"
BIG = 2**63  # one more than SQLite's INTEGER and PostgreSQL's bigint hold


@pytest.fixture
def app_on(db_url: str, tmp_path: Path) -> Iterator[ApiHarness]:
    app = create_app(service_settings(tmp_path, database_url=db_url))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        factory = app.state.service.session_factory
        with session_scope(factory) as s:
            tokens = {
                r.value: create_token(s, name=r.value, role=r, unit_code=None)
                for r in (Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN)
            }
        yield ApiHarness(client, tokens, factory)


def _invalid(r: Any, field: str, kind: str | None = None) -> str:
    """Assert a 422 validation problem naming `field`; its message."""
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["type"].endswith("/validation")
    fields = {e["field"]: e for e in body["errors"]}
    assert field in fields, body
    if kind:
        assert fields[field]["type"] == kind, body
    return str(fields[field]["message"])


def _nul(r: Any, field: str) -> None:
    message = _invalid(r, field, "nul_character")
    assert "NUL" in message and "U+0000" in message


def test_a_nul_character_in_a_query_body_or_path_is_a_422_naming_the_field(
    app_on: ApiHarness,
) -> None:
    """PostgreSQL cannot store or compare U+0000: these were 500 there (SQLite took them)."""
    c, admin = app_on.client, app_on.auth("admin")
    audit_before = c.get("/api/v1/audit", headers=admin).json()
    tokens_before = c.get("/api/v1/tokens", headers=admin).json()

    _nul(c.get("/api/v1/audit", params={"actor": "a\x00b"}, headers=admin), "query.actor")
    _nul(c.post("/api/v1/tokens", json={"name": "a\x00b", "role": "dispatcher"}, headers=admin),
         "body.name")  # fmt: skip
    bridge = {"caller": {"number": "13812345678"}, "dispatcher": {"number": "13912345678"},
              "unit": {"unit_code": "L\x0001"}}  # fmt: skip
    _nul(c.post("/api/v1/bridges", json=bridge, headers=admin), "body.unit.unit_code")
    incident = {"reporter_number": "13812345678", "category": "police", "type": "help",
                "summary": "小区停电\x00"}  # fmt: skip
    _nul(c.post("/api/v1/incidents", json=incident, headers=admin), "body.summary")
    _nul(c.get("/api/v1/bridges/ab%00cd", headers=admin), "path.bridge_id")
    r = c.post("/api/v1/rosters/reminders", json={"week": "2026-W10", "x\x00": 1}, headers=admin)
    _nul(r, "body.x?")

    # nothing was stored: no token, no call, no incident, no audit entry
    assert c.get("/api/v1/tokens", headers=admin).json() == tokens_before
    assert c.get("/api/v1/calls", headers=admin).json() == []
    assert c.get("/api/v1/incidents", headers=admin).json() == []
    assert c.get("/api/v1/audit", headers=admin).json() == audit_before
    # the same requests without the NUL still work (the check is on the character, not the field)
    ok = c.get("/api/v1/audit", params={"actor": "ab"}, headers=admin)
    assert ok.status_code == 200 and ok.json() == []


def test_a_json_body_nested_past_the_parser_is_not_a_500(app_on: ApiHarness) -> None:
    """The NUL guard parses every JSON body, also on routes that take none (/healthz, a GET):
    one nested deeper than Python's recursion limit raised RecursionError there, a 500 with a
    traceback in the log, for any anonymous client."""
    body = "[" * 100_000 + "]" * 100_000
    json_type = {"content-type": "application/json"}
    c, admin = app_on.client, app_on.auth("admin")
    assert c.request("GET", "/healthz", content=body, headers=json_type).status_code == 200
    r = c.request("GET", "/api/v1/calls", content=body, headers={**json_type, **admin})
    assert r.status_code == 200, r.text
    r = c.post("/api/v1/bridges", content=body, headers={**json_type, **admin})
    assert r.status_code in (400, 422), r.text  # FastAPI's own answer to a body it cannot parse


def test_offsets_and_ids_past_what_the_database_holds_are_422(app_on: ApiHarness) -> None:
    """SQLite: OverflowError; PostgreSQL: bigint or integer out of range; both were 500."""
    c, admin = app_on.client, app_on.auth("admin")
    for path in ("/api/v1/surveys", "/api/v1/incidents", "/api/v1/calls"):
        message = _invalid(c.get(path, params={"offset": BIG}, headers=admin), "query.offset")
        assert str(BIG - 1) in message, message
        assert c.get(path, params={"offset": BIG - 1}, headers=admin).json() == []
    # the audit log's id is a PostgreSQL integer (serial)
    for before_id in (BIG, 2**31):
        r = c.get("/api/v1/audit", params={"before_id": before_id}, headers=admin)
        assert str(2**31 - 1) in _invalid(r, "query.before_id")
    r = c.get("/api/v1/audit", params={"before_id": 2**31 - 1}, headers=admin)
    assert r.status_code == 200, r.text


def test_a_token_named_with_200_characters_is_created_and_audited_by_its_id(
    app_on: ApiHarness,
) -> None:
    """The name (up to 200 characters) was the audit entry's resource_id (64): PostgreSQL
    refused the entry and the token was not created (500). The entry names the token's id now,
    as token.revoke does, and keeps the name in its detail."""
    c, admin = app_on.client, app_on.auth("admin")
    name = "县供电公司值班" * 28 + "值班室1"
    assert len(name) == 200
    r = c.post("/api/v1/tokens", json={"name": name, "role": "dispatcher"}, headers=admin)
    assert r.status_code == 201, r.text
    secret = r.json()["token"]
    made = [t for t in c.get("/api/v1/tokens", headers=admin).json() if t["name"] == name]
    assert len(made) == 1
    entries = c.get("/api/v1/audit", params={"action": "token.create"}, headers=admin).json()
    assert [(e["resource_id"], e["detail"]["name"]) for e in entries] == [(made[0]["id"], name)]
    assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()["name"] == name


def test_a_forged_call_cursor_holding_a_nul_is_refused_as_not_ours(app_on: ApiHarness) -> None:
    """The cursor is opaque base64 of `time|call id`; a forged one carried its id into the
    query, and a NUL there was a 500 on PostgreSQL."""
    c, admin = app_on.client, app_on.auth("admin")
    for call_id in ("ab\x00cd", "x" * 33, ""):
        raw = f"2026-12-01T00:00:00+00:00|{call_id}".encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        r = c.get("/api/v1/calls", params={"cursor": cursor}, headers=admin)
        assert "not a cursor this service gave out" in _invalid(r, "cursor")


def test_a_range_the_audio_cannot_serve_is_a_problem_document_and_not_audited_as_a_download(
    app_on: ApiHarness,
) -> None:
    """Starlette answered these itself in text/plain (400, or 416 with an empty body), past the
    problem handlers, after the access had been audited as a download."""
    from tests.recordings.seed_call import seed_recorded_call

    settings = app_on.client.app.state.service.settings  # type: ignore[attr-defined]
    _, rec_id = seed_recorded_call(app_on.session_factory, settings.recordings_dir)
    c, sup = app_on.client, app_on.auth("supervisor")
    url = f"/api/v1/recordings/{rec_id}/audio"
    size = len(c.get(url, headers=sup).content)
    for bad, status in (("bytes=5-2", 400), ("bytes=abc", 400), ("items=0-1", 400),
                        (f"bytes={size}-", 416), (f"bytes={2**70}-", 416)):  # fmt: skip
        r = c.get(url, headers={**sup, "Range": bad})
        assert r.status_code == status, (bad, r.status_code, r.text)
        assert r.headers["content-type"].startswith(PROBLEM), bad
        assert r.json()["status"] == status and r.json()["detail"], bad
        if status == 416:
            assert r.headers["content-range"] == f"bytes */{size}"
    ok = c.get(url, headers={**sup, "Range": "bytes=0-3"})
    assert ok.status_code == 206 and ok.content == b"RIFF"
    audited = c.get("/api/v1/audit", params={"action": "recording.audio"}, headers=sup).json()
    assert [e["detail"]["range"] for e in audited] == ["bytes=0-3", None]  # the refused: none
