"""The webhook sender against a real local HTTP receiver (timeouts, retries, delivery; SQLite
and PostgreSQL), and the validation of the reminder and duty-check endpoints."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from calls.webhook import WebhookSender, WebhookSettings, retry_delay, signature
from storage import webhooks
from storage.engine import make_engine, make_session_factory, session_scope
from tests.surveys.conftest import Clock, local


@pytest.fixture
def factory(migrated_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(migrated_url)
    yield make_session_factory(engine)
    engine.dispose()


class Receiver:
    """Answers after `delay_s` with `status`; keeps (body, signature header)."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.status = 200
        self.got: list[tuple[bytes, str | None]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((body, self.headers.get("X-Linkcall-Signature")))
                time.sleep(receiver.delay_s)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_signature_is_the_hex_hmac_sha256_of_the_body() -> None:
    body = b'{"event":"roster.missing"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature(body, "k") == f"sha256={expected}"
    assert signature(body, "other") != signature(body, "k")


async def test_a_slow_or_failing_receiver_is_retried_with_back_off_until_it_accepts(
    factory: sessionmaker[Session], receiver: Receiver
) -> None:
    clock = Clock(local(2026, 12, 4, 15, 0))
    settings = WebhookSettings(url=receiver.url, secret="s3cret", node="n", timeout_s=0.5,
                               retry_s=30, backoff=2, max_delay_s=100)  # fmt: skip
    sender = WebhookSender(factory, settings, clock=clock)
    with session_scope(factory) as s:
        queued = webhooks.enqueue(s, "roster.missing", {"unit_code": "A", "week": "2026-W50"},
                                  now=clock(), dedupe_key="roster.missing:A:2026-W50")  # fmt: skip
        assert webhooks.enqueue(s, "roster.missing", {}, now=clock(),
                                dedupe_key="roster.missing:A:2026-W50") is None  # fmt: skip
    assert queued is not None

    receiver.delay_s = 2.0  # slower than the attempt's timeout
    began = time.monotonic()
    assert await sender.tick() == 0
    assert time.monotonic() - began < 1.5  # the attempt was bounded
    receiver.delay_s, receiver.status = 0.0, 503
    assert await sender.tick() == 0  # not due yet: 30 s after the failure
    clock.set(clock() + timedelta(seconds=30))
    assert await sender.tick() == 0  # 503
    with session_scope(factory) as s:
        (event,) = webhooks.list_events(s)
    assert (event.attempts, event.last_error, event.delivered_at) == (2, "HTTP 503", None)
    assert event.next_attempt_at == clock() + timedelta(seconds=60)  # backed off: 30 s × 2

    receiver.status = 204
    clock.set(clock() + timedelta(seconds=60))
    assert await sender.tick() == 1
    assert await sender.tick() == 0  # delivered once, never again
    with session_scope(factory) as s:
        (event,) = webhooks.list_events(s)
    assert event.delivered_at == clock() and event.attempts == 3
    bodies = {body for body, _ in receiver.got}
    assert len(bodies) == 1 and len(receiver.got) == 3  # every attempt sent the same body
    body, header = receiver.got[-1]
    assert header == signature(body, "s3cret")
    assert json.loads(body)["data"] == {"unit_code": "A", "week": "2026-W50"}
    assert retry_delay(10, settings) == timedelta(seconds=100)  # capped


def test_reminder_and_duty_check_endpoints_refuse_bad_input(api: Any) -> None:
    client, auth = api.client, api.auth
    for body in ({"week": "2026-W60"}, {"week": "next"}, {}):
        r = client.post("/api/v1/rosters/reminders", json=body, headers=auth("supervisor"))
        assert r.status_code == 422, body
        assert r.headers["content-type"].startswith("application/problem+json")
    r = client.post("/api/v1/rosters/reminders", json={"week": "2026-W50"},
                    headers=auth("dispatcher"))  # fmt: skip
    assert r.status_code == 403
    r = client.post("/api/v1/rosters/reminders", json={"week": "2026-W50"},
                    headers=auth("supervisor"))  # fmt: skip
    assert r.status_code == 202 and r.json()["units"] == [] and r.json()["id"]
    r = client.get("/api/v1/rosters/reminders?week=2026-W50", headers=auth("dispatcher"))
    assert r.json() == {"week": "2026-W50", "units": []}

    url = "/api/v1/duty-checks"
    r = client.get(url, params={"from": "2026-12-02T10:00", "to": "2026-12-01T10:00"},
                   headers=auth("supervisor"))  # fmt: skip
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "to"
    assert client.get(url, params={"from": "yesterday"}, headers=auth("admin")).status_code == 422
    assert client.get(url, params={"unit": "NOPE"}, headers=auth("admin")).status_code == 404
    assert client.get(url, headers=auth("unit")).status_code == 403
    r = client.get(url, params={"from": "2026-12-01T00:00"}, headers=auth("supervisor"))
    assert r.status_code == 200
    assert r.json() == {"from": "2026-12-01T00:00:00+08:00", "to": None, "unit": None,
                        "checks": [], "summary": [], "planned": []}  # fmt: skip
