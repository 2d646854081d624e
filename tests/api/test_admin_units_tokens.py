"""Admin through the API: edit and deactivate units (history kept, no longer offered for
bridges), list and revoke tokens (secrets never listed), the audit log with filters."""

from __future__ import annotations

from typing import Any

from storage.engine import session_scope
from storage.models.auth import Role
from storage.tokens import create_token

UNIT = {"code": "L01", "name": "县供电公司", "kind": "linkage", "fallback_number": "0833-4210001"}
ROSTER = {"leader": {"name": "王局长", "phone": "13900000001"},
          "staff": [{"name": "张三", "phone": "13812345678"}]}  # fmt: skip


def test_an_admin_edits_and_deactivates_a_unit_which_keeps_its_history(api: Any) -> None:
    admin = api.auth("admin")
    assert api.client.post("/api/v1/units", json=UNIT, headers=admin).status_code == 201
    r = api.client.put("/api/v1/units/L01/rosters/2026-W49", json=ROSTER, headers=admin)
    assert r.status_code == 201

    r = api.client.patch(
        "/api/v1/units/L01", json={"name": "县供电分公司", "fallback_number": "0833 421 0009"},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"code": "L01", "name": "县供电分公司", "kind": "linkage",
                        "fallback_number": "+868334210009", "active": True}  # fmt: skip
    bad = api.client.patch("/api/v1/units/L01", json={"fallback_number": "110"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "fallback_number"
    null = api.client.patch("/api/v1/units/L01", json={"name": None}, headers=admin)
    assert null.status_code == 422
    assert (
        api.client.patch("/api/v1/units/L99", json={"active": False}, headers=admin).status_code
        == 404
    )
    for role in ("dispatcher", "supervisor", "unit"):
        r = api.client.patch("/api/v1/units/L01", json={"active": False}, headers=api.auth(role))
        assert r.status_code == 403, role

    r = api.client.patch("/api/v1/units/L01", json={"active": False}, headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False
    active = api.client.get("/api/v1/units?active_only=true", headers=api.auth("dispatcher"))
    assert active.json() == []
    everyone = api.client.get("/api/v1/units", headers=api.auth("dispatcher")).json()
    assert [u["code"] for u in everyone] == ["L01"]
    kept = api.client.get("/api/v1/units/L01/rosters/2026-W49", headers=admin)
    assert kept.status_code == 200 and kept.json()["leader"]["name"] == "王局长"

    body = {"caller": {"number": "2001"}, "dispatcher": {"number": "2002"},
            "unit": {"unit_code": "L01"}}  # fmt: skip
    refused = api.client.post("/api/v1/bridges", json=body, headers=api.auth("dispatcher"))
    assert refused.status_code == 422, refused.text
    assert refused.json()["title"] == "Unit deactivated"
    assert refused.json()["errors"][0]["field"] == "unit.unit_code"
    assert api.client.get("/api/v1/calls", headers=api.auth("dispatcher")).json() == []

    cleared = api.client.patch(
        "/api/v1/units/L01", json={"fallback_number": None, "active": True}, headers=admin
    )
    assert cleared.json()["fallback_number"] is None and cleared.json()["active"] is True
    log = api.client.get(
        "/api/v1/audit", params={"action": "unit.update"}, headers=api.auth("supervisor")
    ).json()
    assert [e["detail"].get("active") for e in log] == [True, False, None]
    assert "0009" not in str(log)  # numbers in the audit detail are masked


def test_tokens_are_listed_without_secrets_and_revoked_at_once(api: Any) -> None:
    admin = api.auth("admin")
    body = {"name": "值班员 U01", "role": "unit", "unit_code": "U01"}
    unknown = api.client.post("/api/v1/tokens", json=body, headers=admin)
    assert unknown.status_code == 422, unknown.text  # no unit U01 on the duty list yet
    assert unknown.json()["errors"][0]["field"] == "unit_code"
    unit = {"code": "U01", "name": "县供电公司", "kind": "linkage"}
    assert api.client.post("/api/v1/units", json=unit, headers=admin).status_code == 201
    r = api.client.post("/api/v1/tokens", json=body, headers=admin)
    assert r.status_code == 201
    secret = r.json()["token"]
    listed = api.client.get("/api/v1/tokens", headers=admin)
    assert listed.status_code == 200
    assert secret not in listed.text and "secret_hash" not in listed.text
    mine = next(t for t in listed.json() if t["name"] == "值班员 U01")
    assert mine["role"] == "unit" and mine["unit_code"] == "U01" and mine["revoked_at"] is None
    assert secret.split("_")[1] == mine["prefix"]
    me = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200

    for role in ("dispatcher", "supervisor"):
        assert api.client.get("/api/v1/tokens", headers=api.auth(role)).status_code == 403
        revoke = f"/api/v1/tokens/{mine['id']}/revoke"
        assert api.client.post(revoke, headers=api.auth(role)).status_code == 403
    r = api.client.post(f"/api/v1/tokens/{mine['id']}/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    first = r.json()["revoked_at"]
    again = api.client.post(f"/api/v1/tokens/{mine['id']}/revoke", headers=admin)
    assert again.json()["revoked_at"] == first
    me = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 401
    assert api.client.post("/api/v1/tokens/nope/revoke", headers=admin).status_code == 404


def test_the_audit_log_filters_by_actor_action_and_time(api: Any) -> None:
    with session_scope(api.session_factory) as s:
        other = create_token(s, name="admin2", role=Role.ADMIN, unit_code=None)
    api.client.post("/api/v1/units", json=UNIT, headers=api.auth("admin"))
    api.client.patch(
        "/api/v1/units/L01", json={"name": "改名"}, headers={"Authorization": f"Bearer {other}"}
    )
    sup = api.auth("supervisor")
    everything = api.client.get("/api/v1/audit", headers=sup).json()
    assert {e["action"] for e in everything} >= {"unit.create", "unit.update"}
    by_actor = api.client.get("/api/v1/audit", params={"actor": "admin2"}, headers=sup).json()
    assert [e["action"] for e in by_actor] == ["unit.update"]
    prefix = api.client.get("/api/v1/audit", params={"action": "unit."}, headers=sup).json()
    assert [e["action"] for e in prefix] == ["unit.update", "unit.create"]
    at = prefix[0]["at"]
    later = api.client.get("/api/v1/audit", params={"from": "2999-01-01T00:00:00Z"}, headers=sup)
    assert later.json() == []
    older = api.client.get(
        "/api/v1/audit", params={"before_id": prefix[0]["id"], "action": "unit."}, headers=sup
    ).json()
    assert [e["action"] for e in older] == ["unit.create"] and at
    assert api.client.get("/api/v1/audit", headers=api.auth("dispatcher")).status_code == 403


def test_creating_a_bridge_checks_token_and_role_first_and_stores_nothing_when_refused(
    api: Any,
) -> None:
    """POST /bridges authenticates inside its one worker-thread call (issue 17): still 401
    without or with a wrong token, 403 for a unit's token, before any number is looked at."""
    body = {"caller": {"number": "2001"}, "dispatcher": {"number": "2002"},
            "unit": {"number": "2003"}}  # fmt: skip
    url = "/api/v1/bridges"
    missing = api.client.post(url, json=body)
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.json()["title"] == "Authentication required"
    unreadable = api.client.post(url, json={"caller": "?"})  # no token: 401 before validation
    assert unreadable.status_code == 401
    wrong = api.client.post(url, json=body, headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401 and wrong.json()["title"] == "Invalid token"
    unit = api.client.post(url, json=body, headers=api.auth("unit"))
    assert unit.status_code == 403 and "dispatcher" in unit.json()["detail"]
    assert api.client.get("/api/v1/calls", headers=api.auth("dispatcher")).json() == []
