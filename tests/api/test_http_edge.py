"""Issue 13, HTTP findings 7, 8, 10 and 12: dial policy and dial rates, token expiry, naive
datetimes and impossible weeks, /readyz details, /docs without a CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.settings import Settings
from storage.base import utcnow
from storage.engine import session_scope
from storage.models.auth import ApiToken, Role
from storage.models.call_records import Call
from storage.models.surveys import Survey
from storage.tokens import create_token
from tests.api.serve_process import cli, service_env
from tests.conftest import ApiHarness, service_settings

PROBLEM = "application/problem+json"
BRIDGE = {
    "caller": {"number": "13812345678"},
    "dispatcher": {"number": "13900000001"},
}


@pytest.fixture
def edge(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ApiHarness]:
    """The app with per-test settings (`@pytest.mark.settings(...)`) and a token per role."""
    marker = request.node.get_closest_marker("settings")
    overrides = dict(marker.kwargs) if marker else {}
    app = create_app(service_settings(tmp_path, **overrides))  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        factory = app.state.service.session_factory
        tokens: dict[str, str] = {}
        with session_scope(factory) as s:
            for role in (Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN):
                tokens[role.value] = create_token(s, name=role.value, role=role, unit_code=None)
            tokens["dispatcher2"] = create_token(
                s, name="desk 2", role=Role.DISPATCHER, unit_code=None
            )
        harness = ApiHarness(client, tokens, factory)
        r = client.post(
            "/api/v1/units",
            json={"code": "U01", "name": "县供电公司", "kind": "linkage"},
            headers=harness.auth("admin"),
        )
        assert r.status_code == 201, r.text
        yield harness


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    return body


def _count(api: ApiHarness, model: type) -> int:
    with api.session_factory() as s:  # type: ignore[operator]
        return int(s.scalar(select(func.count()).select_from(model)))


# ---- finding 7: the dial policy -------------------------------------------------------------


@pytest.mark.parametrize("number", ["911", "999", "17951", "125901"])
def test_short_numbers_are_not_dialled_in_trunk_mode(edge: ApiHarness, number: str) -> None:
    r = edge.client.post(
        "/api/v1/bridges",
        json={**BRIDGE, "unit": {"number": number}},
        headers=edge.auth("dispatcher"),
    )
    body = _problem(r, 422)
    assert body["errors"][0]["field"] == "unit.number"
    r = edge.client.post(
        "/api/v1/surveys", json={"number": number}, headers=edge.auth("dispatcher")
    )
    assert _problem(r, 422)["errors"][0]["field"] == "number"
    roster = {
        "leader": {"name": "王局长", "phone": number},
        "staff": [{"name": "张三", "phone": "13812345678"}],
    }
    r = edge.client.put(
        "/api/v1/units/U01/rosters/2026-W49", json=roster, headers=edge.auth("admin")
    )
    assert _problem(r, 422)["errors"][0]["field"] == "leader.phone"
    assert _count(edge, Call) == 0 and _count(edge, Survey) == 0


def test_fallback_numbers_go_through_the_dial_policy(edge: ApiHarness) -> None:
    for number in ("+447911123456", "911", "95598"):
        r = edge.client.post(
            "/api/v1/units",
            json={
                "code": "U02",
                "name": "县自来水公司",
                "kind": "linkage",
                "fallback_number": number,
            },
            headers=edge.auth("admin"),
        )
        assert _problem(r, 422)["errors"][0]["field"] == "fallback_number"
    assert edge.client.get("/api/v1/units/U02", headers=edge.auth("admin")).status_code == 404


def test_extension_defaults_by_mode_and_an_explicit_pattern(tmp_path: Path) -> None:
    trunk = service_settings(tmp_path)
    assert trunk.extensions is None  # type: ignore[attr-defined]
    pbx = service_settings(tmp_path, sip_registrar="127.0.0.1:5090", sip_trunk_peer="")
    assert pbx.dial_policy.check("2003").dial == "2003"  # type: ignore[attr-defined]
    narrow = service_settings(tmp_path, extensions_pattern=r"^8[0-9]{3}$")
    assert narrow.dial_policy.check("8001").dial == "8001"  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        narrow.dial_policy.check("911")  # type: ignore[attr-defined]
    off = service_settings(tmp_path, sip_registrar="127.0.0.1:5090", extensions_pattern="")
    with pytest.raises(ValueError):
        off.dial_policy.check("2003")  # type: ignore[attr-defined]


@pytest.mark.settings(dial_rate="per_token=3/min,global=4/min")
def test_dial_rates_per_token_and_global_answer_429_with_retry_after(edge: ApiHarness) -> None:
    for i in range(3):
        r = edge.client.post(
            "/api/v1/surveys", json={"number": "13812345678"}, headers=edge.auth("dispatcher")
        )
        assert r.status_code == 201, (i, r.text)
    r = edge.client.post(
        "/api/v1/surveys", json={"number": "13812345678"}, headers=edge.auth("dispatcher")
    )
    body = _problem(r, 429)
    assert body["type"].endswith("/rate-limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 20  # one call back in 60/3 s
    # the same token cannot place a bridge either; nothing is dialled
    r = edge.client.post(
        "/api/v1/bridges",
        json={**BRIDGE, "unit": {"number": "0833-4212345"}},
        headers=edge.auth("dispatcher"),
    )
    _problem(r, 429)
    assert _count(edge, Call) == 0
    # another token has its own bucket, until the service-wide one (4/min) is spent
    r = edge.client.post(
        "/api/v1/surveys", json={"number": "13812345678"}, headers=edge.auth("dispatcher2")
    )
    assert r.status_code == 201, r.text
    r = edge.client.post(
        "/api/v1/surveys", json={"number": "13812345678"}, headers=edge.auth("dispatcher2")
    )
    _problem(r, 429)
    r = edge.client.post("/api/v1/units/U01/duty-checks", headers=edge.auth("supervisor"))
    _problem(r, 429)
    assert _count(edge, Survey) == 4


@pytest.mark.settings(dial_rate="per_token=2/min")
def test_a_bridge_counts_against_the_dial_rate(edge: ApiHarness) -> None:
    statuses = []
    for _ in range(3):
        r = edge.client.post(
            "/api/v1/bridges",
            json={**BRIDGE, "unit": {"number": "0833-4212345"}},
            headers=edge.auth("dispatcher"),
        )
        statuses.append(r.status_code)
    assert statuses == [202, 202, 429]
    assert _count(edge, Call) == 2


def test_dial_rate_setting_is_validated() -> None:
    assert Settings(dial_rate="off").dial_rates.per_token is None
    for bad in ("per_token=10", "global=0/min", "per_user=1/min", "per_token=1/fortnight"):
        with pytest.raises(ValueError, match="LINKCALL_DIAL_RATE"):
            Settings(dial_rate=bad)


# ---- finding 10: naive datetimes, impossible weeks ------------------------------------------


@pytest.mark.parametrize(
    ("path", "role", "field"),
    [
        ("/api/v1/calls?from=2026-12-01T00:00:00", "dispatcher", "from"),
        ("/api/v1/calls?to=2026-12-01T08:00:00", "dispatcher", "to"),
        ("/api/v1/audit?from=2026-12-01T00:00:00", "supervisor", "query.from"),
        ("/api/v1/incidents?to=2026-12-01T00:00:00", "dispatcher", "query.to"),
        ("/api/v1/surveys/stats?from=2026-12-01T00:00:00", "supervisor", "query.from"),
        ("/api/v1/surveys/stats?to=2026-12-01T00:00:00&format=csv", "supervisor", "query.to"),
        ("/api/v1/surveys?from=2026-12-01T00:00:00", "dispatcher", "query.from"),
    ],
)
def test_naive_datetimes_are_422_naming_the_field(
    edge: ApiHarness, path: str, role: str, field: str
) -> None:
    body = _problem(edge.client.get(path, headers=edge.auth(role)), 422)
    assert [e["field"] for e in body["errors"]] == [field]
    aware = path.replace(":00:00", ":00:00%2B08:00")
    assert edge.client.get(aware, headers=edge.auth(role)).status_code == 200


@pytest.mark.parametrize("week", ["0000-W01", "0001-W01", "9999-W52"])
def test_impossible_weeks_are_422(edge: ApiHarness, week: str) -> None:
    for path in (
        f"/api/v1/units/U01/rosters/{week}",
        f"/api/v1/rosters/missing?week={week}",
        f"/api/v1/rosters/export?week={week}",
    ):
        body = _problem(edge.client.get(path, headers=edge.auth("admin")), 422)
        assert "year" in body["detail"], path


# ---- finding 8: tokens expire ----------------------------------------------------------------


def test_an_expired_token_is_401_and_a_live_one_works(edge: ApiHarness) -> None:
    with session_scope(edge.session_factory) as s:  # type: ignore[arg-type]
        old = create_token(
            s,
            name="old",
            role=Role.ADMIN,
            unit_code=None,
            expires_at=utcnow() - timedelta(seconds=1),
        )
        live = create_token(
            s,
            name="live",
            role=Role.ADMIN,
            unit_code=None,
            expires_at=utcnow() + timedelta(hours=1),
        )
    r = edge.client.get("/api/v1/me", headers={"Authorization": f"Bearer {old}"})
    body = _problem(r, 401)
    assert "expired" in body["detail"] and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = edge.client.get("/api/v1/me", headers={"Authorization": f"Bearer {live}"})
    assert r.status_code == 200 and r.json()["name"] == "live"


@pytest.mark.settings(token_ttl_days=7)
def test_tokens_made_by_the_api_expire_after_the_default_ttl(edge: ApiHarness) -> None:
    r = edge.client.post(
        "/api/v1/tokens", json={"name": "desk 9", "role": "dispatcher"}, headers=edge.auth("admin")
    )
    assert r.status_code == 201, r.text
    left = _expires(r.json()["expires_at"]) - utcnow()
    assert timedelta(days=7) - timedelta(minutes=1) < left <= timedelta(days=7)
    r = edge.client.post(
        "/api/v1/tokens",
        json={"name": "desk 10", "role": "dispatcher", "expires_in_days": 1},
        headers=edge.auth("admin"),
    )
    assert timedelta(hours=23) < _expires(r.json()["expires_at"]) - utcnow() <= timedelta(days=1)


def _expires(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


def test_cli_tokens_create_expires(tmp_path: Path) -> None:
    env = service_env(tmp_path, LINKCALL_TOKEN_TTL_DAYS="30")
    made = cli(env, "tokens", "create", "--role", "dispatcher", "--expires", "90d")
    assert made.returncode == 0, made.stderr
    assert "expires" in made.stderr
    default = cli(env, "tokens", "create", "--role", "supervisor")
    assert default.returncode == 0, default.stderr
    forever = cli(env, "tokens", "create", "--role", "admin", "--expires", "never")
    assert "never expires" in forever.stderr
    bad = cli(env, "tokens", "create", "--role", "admin", "--expires", "soon")
    assert bad.returncode == 2 and "90d" in bad.stderr
    listed = cli(env, "tokens", "list").stdout
    assert re.search(r"dispatcher\s+-\s+active\s+\d{4}-\d{2}-\d{2}", listed), listed
    assert "no-expiry" in listed
    from storage.engine import make_engine, make_session_factory

    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'linkcall.sqlite3'}")
    try:
        with make_session_factory(engine)() as s:
            rows = {t.role: t.expires_at for t in s.scalars(select(ApiToken))}
    finally:
        engine.dispose()
    now = utcnow()
    assert rows[Role.ADMIN] is None
    assert timedelta(days=89) < rows[Role.DISPATCHER] - now <= timedelta(days=90)
    assert timedelta(days=29) < rows[Role.SUPERVISOR] - now <= timedelta(days=30)


# ---- finding 12: /readyz details, /docs ------------------------------------------------------


def test_readyz_details_only_with_a_token(edge: ApiHarness) -> None:
    anonymous = edge.client.get("/readyz")
    assert anonymous.status_code == 200
    checks = anonymous.json()["checks"]
    assert checks and all(set(c) == {"ok"} for c in checks.values())
    assert "127.0.0.1" not in anonymous.text and "1000" not in anonymous.text
    bad = edge.client.get("/readyz", headers={"Authorization": "Bearer lc_nope_nope"})
    assert all(set(c) == {"ok"} for c in bad.json()["checks"].values())
    full = edge.client.get("/readyz", headers=edge.auth("dispatcher"))
    assert all("detail" in c for c in full.json()["checks"].values())
    assert "127.0.0.1" in full.text  # the SIP listener and trunk peer, for operators


def test_docs_load_nothing_from_another_host(edge: ApiHarness) -> None:
    page = edge.client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
    assert urls and all(u.startswith("/") for u in urls), urls
    assert "://" not in page.text.replace("http://www.w3.org", "")
    for url in urls:
        assert edge.client.get(url).status_code == 200, url
    assert edge.client.get("/redoc").status_code == 404
    assert "/api/v1/me" in edge.client.get("/openapi.json").json()["paths"]


@pytest.mark.settings(api_docs=False)
def test_docs_can_be_turned_off(edge: ApiHarness) -> None:
    for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
        assert edge.client.get(path).status_code == 404, path
