"""The webhook provider's delivery loop: take, sign, POST, classify, retry.

The seed article's mail service: you register a URL and the event types you
care about; when an event happens, the provider POSTs it to you. Each
(event, endpoint) is a row in the SQLite **outbox**, written before any
attempt (``intake``), so a delivery survives a restart. This file delivers
the rows, top to bottom:

1. The *dispatcher* takes due rows from the outbox and starts one attempt
   each, at most ``max_in_flight`` at once (new rows start at once while
   there is room), so a slow receiver does not hold up the others.
2. An *attempt* checks the URL again, signs the stored body with a fresh
   timestamp and POSTs it with a per-attempt timeout (``post_signed``).
3. It *classifies* the answer: 2xx delivered; 410 gone (the endpoint is
   disabled); anything else, a timeout or a refused connection: failed.
4. A failed row is *retried* after the schedule's next delay or, when the
   schedule is used up, moved to the *dead letters*, from where it can be
   replayed.

What production adds, each in its own module beside this one: ``intake``
(hub to outbox), ``outbox`` (the durable file), ``retry`` (schedule, jitter,
Retry-After, status classes), ``endpoints`` (registration, secret rotation),
``ssrf``, ``signing``, ``wire`` (keep-alive client), ``health`` (per-endpoint
health, alerts, disabling), ``provider_api`` (HTTP API, ``provider_app``).
Notebooks drive it with ``lab.provider_handle.ProviderHandle``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..hub import EventHub
from . import signing
from .endpoints import Endpoint, Endpoints
from .health import Health, HealthConfig
from .intake import Intake
from .outbox import Message, Outbox
from .provider_api import provider_app  # the app factory notebooks start, with the HTTP API
from .retry import DEMO_SCHEDULE_S, NO_ANSWER, RetryPolicy, classify, no_answer, parse_retry_after
from .ssrf import check_url_async
from .wire import ConnectionPool, Response


@dataclass(frozen=True)
class ProviderConfig:
    outbox_path: str
    schedule: tuple = DEMO_SCHEDULE_S
    jitter: float = 0.2
    timeout_s: float = 1.0  # per attempt; Standard Webhooks allows a receiver 15 s
    allow_loopback: bool = False
    api_token: str | None = None  # None: the HTTP API is open (in-kernel notebook use)
    max_in_flight: int = 64
    seed: int | None = None
    health: HealthConfig = HealthConfig()  # alert and disable thresholds (``health``)


class Provider:
    """The provider's state and tasks (``server.state``); lives on the server's loop."""

    def __init__(
        self, hub: EventHub, config: ProviderConfig, clock: Callable[[], float] = time.time
    ):
        self.hub, self.config, self.clock = hub, config, clock
        self.policy = RetryPolicy(config.schedule, config.jitter, random.Random(config.seed))
        self.outbox = Outbox(config.outbox_path, clock)
        self.endpoints = Endpoints(self.outbox, config.allow_loopback)
        self.pool = ConnectionPool(max_idle_per_key=config.max_in_flight)
        self.recent_requests: OrderedDict[str, bytes] = OrderedDict()  # msg_id -> bytes sent
        self._in_flight: dict[int, asyncio.Task] = {}  # outbox row id -> its attempt
        self._wake = asyncio.Event()
        self._backlog = True  # rows left pending by an earlier run may be due
        self._closed = False
        self.intake = Intake(hub, self.outbox, self.endpoints, self._start_now)
        self.health = Health(self)  # per-endpoint success rate, alerts, disabling
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    # -- 1: take rows from the outbox ---------------------------------------------------------
    def _start_now(self, messages: list[Message]) -> None:
        """Rows just written: first attempts start now while there is room;
        the dispatcher takes the rest from the outbox."""
        room = max(0, self.config.max_in_flight - len(self._in_flight))
        for message in messages[:room]:
            self._start(message)
        if len(messages) > room:
            self._backlog = True
            self._wake.set()

    def _start(self, message: Message) -> None:
        self._in_flight[message.id] = asyncio.get_running_loop().create_task(self._attempt(message))

    async def _dispatch(self) -> None:
        while not self._closed:
            self._wake.clear()
            free = self.config.max_in_flight - len(self._in_flight)
            self._backlog = free <= 0  # full: wake me when a slot frees
            timeout: float | None = None
            if free > 0:
                due = self.outbox.due(self.clock(), set(self._in_flight), free)
                for message in due:
                    self._start(message)
                self._backlog = len(due) == free  # there may be more due rows than room
                if len(self._in_flight) < self.config.max_in_flight:
                    next_at = self.outbox.next_due_at(set(self._in_flight))
                    timeout = None if next_at is None else max(0.0, next_at - self.clock())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    # -- 2, 3, 4: one attempt ----------------------------------------------------------------
    async def _attempt(self, message: Message) -> None:
        attempt, started_at, t0 = message.attempts + 1, self.clock(), time.perf_counter()
        endpoint = self.endpoints.get(message.sub_id)
        active = endpoint is not None and endpoint.status == "active"
        status = retry_after = error = None
        try:
            if not active:
                error = "subscription deleted or disabled"
            else:
                response = await self.post_signed(endpoint, message.msg_id, message.body)
                status = response.status
                self._remember(message.msg_id, response.request_bytes)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
        except NO_ANSWER as exc:
            error = no_answer(exc, self.config.timeout_s)
        duration_ms = (time.perf_counter() - t0) * 1000
        outcome, error = classify(status, error, retry_after)
        next_delay = None
        if outcome == "gone":
            self.endpoints.disable(message.sub_id, "receiver answered 410 Gone")
        elif outcome == "failed":  # retry after the schedule's next delay, or dead letter
            next_delay = self.policy.next_delay(attempt, retry_after) if active else None
            outcome = "retry" if next_delay is not None else "dead"
        if self._closed:
            return  # stopping: leave the row pending; the next start retries it
        self.outbox.record_attempt(
            message, attempt, started_at, duration_ms, status, error, outcome, next_delay
        )
        self.health.record(message, outcome, started_at, active)  # same transaction
        self.outbox.commit_soon()  # attempts ending in the same loop turn share a commit
        self._in_flight.pop(message.id, None)
        # Wake the dispatcher only when it has work: a retry to schedule, or
        # rows waiting for a free slot (a delivered message needs no query).
        if outcome == "retry" or self._backlog:
            self._wake.set()

    async def post_signed(self, endpoint: Endpoint, msg_id: str, body: bytes) -> Response:
        """One signed POST to ``endpoint``, its URL checked again now (DNS may
        have changed since registration: ``ssrf``)."""
        target = await check_url_async(endpoint.url, self.endpoints.loopback_ok(endpoint.id))
        headers = signing.sign_headers(endpoint.secrets, msg_id, body)
        headers["Content-Type"] = "application/json"
        return await self.pool.post_to(target, headers, body, self.config.timeout_s)

    def _remember(self, msg_id: str, request: bytes) -> None:
        """Keep the last 200 requests' bytes, for the notebook's wire view."""
        self.recent_requests[msg_id] = request
        self.recent_requests.move_to_end(msg_id)
        while len(self.recent_requests) > 200:
            self.recent_requests.popitem(last=False)

    # -- dead letters, status, shutdown ------------------------------------------------------
    def replay(self, message_ids: list[int] | None = None) -> int:
        n = self.outbox.replay(message_ids)
        self._backlog = True
        self._wake.set()
        return n

    def status(self) -> dict[str, Any]:
        return {
            **self.outbox.counts(),
            "in_flight": len(self._in_flight),
            "subscriptions": len(self.endpoints),
            "connections_opened": self.pool.connections_opened,
        }

    async def shutdown(self) -> None:
        """Stop hook: put what the hub already handed us into the outbox, then
        stop delivering. Pending rows stay pending in the file."""
        if self._closed:
            return
        await self.intake.close()
        self._closed = True
        self._wake.set()
        tasks = [self._dispatcher, *self._in_flight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pool.close()
        self.outbox.close()


__all__ = ["Provider", "ProviderConfig", "provider_app"]
