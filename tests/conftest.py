"""Shared fixtures: databases on SQLite and PostgreSQL, app clients, tokens.

PostgreSQL: LINKCALL_TEST_PG_URL (default postgres@127.0.0.1:5432/test, trust auth). Each test
gets its own schema, dropped afterwards. Without a reachable server the PostgreSQL half is skipped
with a visible notice — except under CI (CI=true), where it is a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

pytest_plugins = ["lab.pytest_plugin"]

PG_URL = os.environ.get("LINKCALL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_pg_state: dict[str, str | None] = {}


def _pg_unavailable() -> str | None:
    """None when PostgreSQL answers, else the reason (checked once per run)."""
    if "reason" not in _pg_state:
        try:
            eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as conn:
                conn.execute(text("SELECT 1"))
            eng.dispose()
            _pg_state["reason"] = None
        except OperationalError as exc:
            _pg_state["reason"] = f"PostgreSQL not reachable at {PG_URL}: {exc.orig}"
    return _pg_state["reason"]


def pytest_report_header(config: pytest.Config) -> str:
    reason = _pg_unavailable()
    if reason is None:
        return f"linkcall: PostgreSQL tests run against {PG_URL}"
    verdict = "FAIL (CI)" if IN_CI else "SKIPPED"
    return f"linkcall: PostgreSQL half {verdict} — {reason}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    reason = _pg_unavailable()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"PostgreSQL is mandatory under CI: {reason}")
        pytest.skip(f"NOTICE: PostgreSQL half skipped — {reason}")
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def service_settings(tmp_path: Path, **overrides: object) -> object:
    """Settings for a service under test: its own data dir, free SIP and RTP ports, and (unless
    overridden) a trunk peer nobody answers at, so telephony counts as configured."""
    from api.settings import Settings
    from lab import ports

    rtp = ports.rtp_range(100)
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "sip_listen": f"127.0.0.1:{ports.sip_port()}",
        "sip_trunk_peer": "127.0.0.1:9",
        "rtp_ports": f"{rtp.lo}-{rtp.hi}",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def migrated_url(db_url: str) -> str:
    """A database URL at the code's head revision."""
    from storage import migrate

    migrate.upgrade(db_url)
    return db_url


class ApiHarness:
    """A running app (TestClient) with one token per role."""

    def __init__(self, client: object, tokens: dict[str, str], session_factory: object) -> None:
        self.client = client
        self.tokens = tokens
        self.session_factory = session_factory

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiHarness]:
    """The app on a fresh SQLite database under tmp_path, started through its lifespan."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from storage.engine import session_scope
    from storage.models.auth import Role
    from storage.tokens import create_token

    settings = service_settings(tmp_path)
    app = create_app(settings)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as client:
        factory = app.state.service.session_factory
        tokens: dict[str, str] = {}
        with session_scope(factory) as s:
            for role in (Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN):
                tokens[role.value] = create_token(s, name=role.value, role=role, unit_code=None)
            tokens["unit"] = create_token(s, name="unit U01", role=Role.UNIT, unit_code="U01")
            tokens["unit2"] = create_token(s, name="unit U02", role=Role.UNIT, unit_code="U02")
        yield ApiHarness(client, tokens, factory)


class LiveService:
    """The app served by a real uvicorn on a free loopback port, in a background thread."""

    def __init__(
        self,
        base_url: str,
        app: object,
        tokens: dict[str, str],
        stop: Callable[[], None] = lambda: None,
    ) -> None:
        self.base_url = base_url
        self.app = app
        self.tokens = tokens
        self.stop = stop  # stop the server now (its context exit then does nothing more)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@contextlib.contextmanager
def run_live_app(settings: object) -> Iterator[LiveService]:
    """Serve create_app(settings) with a real uvicorn in a thread; tokens for each role."""
    import socket
    import threading
    import time

    import uvicorn

    from api.app import create_app
    from storage.engine import session_scope
    from storage.models.auth import Role
    from storage.tokens import create_token

    app = create_app(settings)  # type: ignore[arg-type]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="live-api", daemon=True)

    def stop() -> None:
        server.should_exit = True
        thread.join(30)

    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                pytest.fail("live API server did not start")
            time.sleep(0.05)
        tokens: dict[str, str] = {}
        with session_scope(app.state.service.session_factory) as sess:
            for role in (Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN):
                tokens[role.value] = create_token(sess, name=role.value, role=role, unit_code=None)
            tokens["unit"] = create_token(sess, name="unit U01", role=Role.UNIT, unit_code="U01")
        yield LiveService(f"http://127.0.0.1:{port}", app, tokens, stop)
    finally:
        stop()


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[LiveService]:
    """A real HTTP server (for streaming responses and browsers); stopped at teardown."""
    with run_live_app(service_settings(tmp_path)) as live:
        yield live
