"""Roster reminder calls, the webhook and scheduled 查岗 on the real telephony stack.

A linkcall service (create_app under uvicorn, tests/conftest.py `run_live_app`) registered to
a Kamailio as 1000 calls baresip phones (2xxx); calling hours all day and retries within
seconds (the survey settings, which reminders share). A small `http.server` on a free loopback
port stands in for the county's SMS gateway: it checks every request's HMAC signature with its
own copy of the secret and answers 401 to a bad one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab.baresip import BaresipPhone
from lab.kamailio import Kamailio
from tests.conftest import LiveService, run_live_app, service_settings
from tests.surveys_lab.conftest import SURVEY_ENV

SECRET = "county-sms-gateway-secret"


@dataclass
class Received:
    """One request the receiver got."""

    event: str
    body: dict[str, Any]
    signature_ok: bool


@dataclass
class WebhookReceiver:
    """An HTTP receiver on 127.0.0.1 that verifies X-Linkcall-Signature with `secret`."""

    secret: str
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/linkcall"

    def verify(self, body: bytes, header: str | None, secret: str | None = None) -> bool:
        """What the county's side does: recompute the HMAC and compare in constant time."""
        mac = hmac.new((secret or self.secret).encode(), body, hashlib.sha256).hexdigest()
        return header is not None and hmac.compare_digest(header, f"sha256={mac}")

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = receiver.verify(body, self.headers.get("X-Linkcall-Signature"))
                data = json.loads(body)
                receiver.received.append(Received(data["event"], data, ok))
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def events(self, name: str) -> list[Received]:
        return [r for r in self.received if r.event == name]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(SECRET)
    r.start()
    yield r
    r.stop()


@dataclass
class Lab:
    """A running service (restartable) and an HTTP client on it."""

    live: LiveService
    http: httpx.Client
    kamailio: Kamailio
    phone_factory: Callable[..., BaresipPhone]

    def phone(self, user: str, **kw: Any) -> BaresipPhone:
        return self.phone_factory(user, kamailio=self.kamailio, **kw)

    def get(self, path: str, role: str = "supervisor", **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=self.live.auth(role), **kw)

    def post(self, path: str, role: str = "supervisor", **kw: Any) -> httpx.Response:
        return self.http.post(path, headers=self.live.auth(role), **kw)

    def put(self, path: str, role: str = "admin", **kw: Any) -> httpx.Response:
        return self.http.put(path, headers=self.live.auth(role), **kw)


def wait_for(fetch: Callable[[], Any], pred: Callable[[Any], bool], timeout: float) -> Any:
    """Poll `fetch` until `pred` holds (AssertionError with the last value at the deadline)."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not pred(value):
        assert time.monotonic() < deadline, f"never got there: {value}"
        time.sleep(0.3)
        value = fetch()
    return value


ServiceStarter = Callable[..., AbstractContextManager[Lab]]


@pytest.fixture
def start_service(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kamailio_factory: Callable[..., Kamailio],
    lab_users: dict[str, str],
    phone_factory: Callable[..., BaresipPhone],
) -> ServiceStarter:
    """`with start_service(**settings) as lab:` a service registered to one Kamailio; call it
    again with the same data directory (and database) to restart the service."""
    for key, value in SURVEY_ENV.items():
        monkeypatch.setenv(key, value)
    kam = kamailio_factory()
    data_dir = tmp_path / "data"
    sip = {}

    from contextlib import contextmanager

    @contextmanager
    def start(**overrides: Any) -> Iterator[Lab]:
        settings = service_settings(
            tmp_path, data_dir=data_dir, sip_registrar=f"127.0.0.1:{kam.udp_port}",
            sip_trunk_peer="", sip_user="1000", sip_password=lab_users["1000"],
            ring_timeout_unit_s=5.0, ring_timeout_caller_s=5.0, **sip, **overrides,
        )  # fmt: skip
        sip.setdefault("sip_listen", settings.sip_listen)  # type: ignore[attr-defined]
        with (
            run_live_app(settings) as live,
            httpx.Client(base_url=live.base_url, timeout=30) as http,
        ):
            deadline = time.monotonic() + 15
            while not kam.registered("1000"):
                assert time.monotonic() < deadline, "service never registered"
                time.sleep(0.2)
            yield Lab(live, http, kam, phone_factory)

    return start
