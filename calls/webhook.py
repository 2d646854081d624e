"""The outbound webhook: events from the outbox POSTed to the county's SMS gateway / chat bot.

Every `poll_s` (the interval job `webhooks.deliver`) the sender claims due undelivered events
(storage.webhooks.claim_due: the claimed tables' lease helper, one sender per event) and POSTs
them one after the other, oldest due first: each event's stored JSON body to `url` with
`Content-Type: application/json` and `X-Linkcall-Signature: sha256=<hex HMAC-SHA256 of the
body with the secret>`. A 2xx answer marks it delivered; any
other answer, a connection error or the per-attempt `timeout_s` schedules it again after
`retry_s × backoff^(attempts)` (at most `max_delay_s`). Events are kept until delivered.

A batch can take longer than its lease (a slow receiver: `batch × timeout_s`): the leases of the
events not sent yet are renewed every `lease_s / 3`; when one was lost (another node took it)
the batch stops there, so no event is sent by two nodes at once or out of its order.

Why not the claimed-work runner of the call jobs (calls/claimed_work.py): it runs one task per
row, concurrently, in free call slots; the outbox is sent in order over one HTTP client.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from calls.component import Health
from storage import webhooks as repo
from storage.base import utcnow
from storage.engine import session_scope

log = logging.getLogger(__name__)

DELIVER_JOB_ID = "webhooks.deliver"
SIGNATURE_HEADER = "X-Linkcall-Signature"


def signature(body: bytes, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of body>`: what the receiver recomputes with its secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Where and how events are sent."""

    url: str
    secret: str
    node: str
    timeout_s: float = 10.0
    poll_s: float = 15.0
    retry_s: float = 30.0
    backoff: float = 2.0
    max_delay_s: float = 3600.0
    lease_s: float = 120.0
    batch: int = 20


def retry_delay(attempts: int, settings: WebhookSettings) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1-based)."""
    seconds = settings.retry_s * settings.backoff ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, settings.max_delay_s))


class WebhookSender:
    """Delivers outbox events; `transport` is an httpx seam for tests of failure paths."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        settings: WebhookSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settings = settings
        self.clock = clock
        self.transport = transport
        self.lease = timedelta(seconds=settings.lease_s)

    async def tick(self) -> int:
        """Send every due event once, in order; returns how many were delivered."""
        events = await asyncio.to_thread(self._claim)
        if not events:
            return 0
        delivered = 0
        renew_at = self.clock() + self.lease / 3
        async with httpx.AsyncClient(
            timeout=self.settings.timeout_s, transport=self.transport
        ) as client:
            for i, event in enumerate(events):
                if self.clock() >= renew_at:
                    rest = [e.id for e in events[i:]]
                    if await asyncio.to_thread(self._renew, rest) < len(rest):
                        log.warning("webhook batch stopped: a lease was lost (%d not sent)",
                                    len(rest))  # fmt: skip
                        break
                    renew_at = self.clock() + self.lease / 3
                delivered += await self._send(client, event)
        return delivered

    def _claim(self) -> list[repo.OutboxEvent]:
        with session_scope(self.session_factory) as session:
            return repo.claim_due(
                session, node=self.settings.node, now=self.clock(), lease=self.lease,
                limit=self.settings.batch,
            )  # fmt: skip

    def _renew(self, event_ids: list[str]) -> int:
        with session_scope(self.session_factory) as session:
            return repo.renew(
                session, node=self.settings.node, event_ids=event_ids,
                until=self.clock() + self.lease,
            )  # fmt: skip

    async def _send(self, client: httpx.AsyncClient, event: repo.OutboxEvent) -> int:
        body = event.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(body, self.settings.secret),
            "X-Linkcall-Event": event.event,
            "X-Linkcall-Delivery": event.id,
        }
        try:
            # every attempt is bounded: httpx's timeout per phase, this deadline for the whole
            async with asyncio.timeout(self.settings.timeout_s):
                resp = await client.post(self.settings.url, content=body, headers=headers)
            error = None if resp.is_success else f"HTTP {resp.status_code}"
        except (httpx.HTTPError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        await asyncio.to_thread(self._store, event, error)
        if error is None:
            log.info("webhook %s %s delivered", event.event, event.id)
            return 1
        log.warning("webhook %s %s attempt %d failed: %s", event.event, event.id,
                    event.attempts + 1, error)  # fmt: skip
        return 0

    def _store(self, event: repo.OutboxEvent, error: str | None) -> None:
        now = self.clock()
        with session_scope(self.session_factory) as session:
            if error is None:
                repo.mark_delivered(session, event.id, now=now)
            else:
                delay = retry_delay(event.attempts + 1, self.settings)
                repo.mark_failed(
                    session, event.id, node=self.settings.node, error=error,
                    next_attempt_at=now + delay,
                )  # fmt: skip


class WebhookComponent:
    """A service component: the sender's `tick` as the interval job `webhooks.deliver`."""

    name = "webhooks"

    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender
        self._last_error: str | None = None

    def register(self, add_interval_job: Callable[..., None]) -> None:
        """Add the delivery job through the scheduler's `add_interval_job`."""
        add_interval_job(
            self.tick, seconds=self.sender.settings.poll_s, job_id=DELIVER_JOB_ID,
            name="webhook delivery",
        )  # fmt: skip

    async def tick(self) -> None:
        """One delivery round; a database failure is logged and shown in health."""
        try:
            await self.sender.tick()
            self._last_error = None
        except Exception as exc:  # the database may be briefly unreachable: next tick retries
            log.exception("webhook delivery failed")
            self._last_error = f"{type(exc).__name__}: {exc}"

    async def start(self) -> None:
        """Nothing to start: the scheduler runs the job."""

    async def stop(self) -> None:
        """Nothing to stop: an event being sent is sent again after its lease."""

    def health(self) -> Health:
        """Healthy unless the last round failed (a receiver that refuses is not ill health)."""
        if self._last_error:
            return Health(False, self._last_error)
        return Health(True, "delivering")

    def describe(self) -> dict[str, Any]:
        """Where events go (the secret is never shown)."""
        return {"url": self.sender.settings.url, "poll_s": self.sender.settings.poll_s}
