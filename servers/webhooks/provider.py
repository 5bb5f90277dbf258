"""The webhook provider: subscriptions, signed deliveries, retries, dead letters.

The seed article's mail service: you register a URL and the event types you
care about; when an event happens, the provider POSTs it to you.

How one event travels here:

1. ``server.publish("email.bounced", {...})`` (any thread) numbers it in the
   hub; the provider's *consumer* task reads it on the loop.
2. For each active subscription that wants this type, one row goes into the
   SQLite **outbox** and is committed: from now on the delivery survives a
   provider restart.
3. The *dispatcher* task picks due rows and starts one attempt task each
   (up to ``max_in_flight`` at once, so many subscriptions deliver
   concurrently and a slow receiver does not hold up the others).
4. An attempt re-checks the URL (SSRF), signs the stored body with a fresh
   timestamp, POSTs it over a kept-alive connection with a per-attempt
   timeout, and logs the attempt. 2xx: delivered. 410: the receiver asked to
   be disabled; stop. Anything else (3xx included: redirects are not
   followed), a timeout or a refused connection: retry later, after the
   next delay of the schedule (with jitter, and at least ``Retry-After`` if
   the receiver sent one), or, when the schedule is used up, move the row to
   the dead letters, from where it can be replayed.

The default schedule is Svix's (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h), **divided by 1000** so a notebook sees it in about 100 s instead of
about 28 hours.
"""

from __future__ import annotations

import asyncio
import email.utils
import hmac
import json
import random
import re
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tornado.web import Application, HTTPError, RequestHandler, stream_request_body

from ..common import JSONErrorsMixin
from ..cursor import CursorError, parse_number
from ..events import Event, check_event_type
from ..hub import EventHub
from . import signing
from .bodylimit import BodyLimitMixin
from .outbox import Message, Outbox, Subscription
from .receiver import quiet_log
from .ssrf import URLRefusedError, check_url_async
from .wire import ConnectionPool, ProtocolError

# Svix's published schedule: delay before each attempt, in seconds.
SVIX_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def compressed(schedule: Sequence[float] = SVIX_SCHEDULE_S, factor: float = 1000.0) -> tuple:
    """A real schedule made fast enough for a demo: every delay / ``factor``."""
    return tuple(d / factor for d in schedule)


DEMO_SCHEDULE_S = compressed(
    SVIX_SCHEDULE_S, 1000
)  # 0, 5 ms, 0.3 s, 1.8 s, 7.2 s, 18 s, 36 s, 36 s


def exponential_schedule(
    attempts: int, base: float, factor: float = 2.0, cap: float = 3600.0
) -> tuple:
    """0 for the first attempt, then base, base*factor, ... capped: the
    textbook exponential backoff (jitter is added by ``RetryPolicy``)."""
    return (0.0,) + tuple(min(cap, base * factor**i) for i in range(attempts - 1))


class RetryPolicy:
    """When to try again. ``schedule[i]`` is the delay before attempt i+1.

    ``jitter`` spreads each delay uniformly over ±jitter of itself, so
    thousands of deliveries that failed together (a receiver outage) do not
    come back together and knock the recovering receiver over again.
    """

    def __init__(
        self,
        schedule: Sequence[float] = DEMO_SCHEDULE_S,
        jitter: float = 0.2,
        rng: random.Random | None = None,
        max_retry_after_s: float = 60.0,
    ) -> None:
        if not schedule:
            raise ValueError("the schedule needs at least one attempt")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction between 0 and 1")
        self.schedule = tuple(float(d) for d in schedule)
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.max_retry_after_s = max_retry_after_s

    @property
    def max_attempts(self) -> int:
        return len(self.schedule)

    def next_delay(self, attempts_done: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None: give up (dead letter)."""
        if attempts_done >= len(self.schedule):
            return None
        delay = self.schedule[attempts_done]
        if self.jitter:
            delay *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        if retry_after is not None:
            # The receiver said when it can take more: never come back sooner.
            delay = max(delay, min(retry_after, self.max_retry_after_s))
        return delay


_DELTA_SECONDS = re.compile(r"[0-9]{1,18}")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` is delta-seconds or an HTTP date (RFC 9110, 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):  # ASCII digits only: "²" and "٣" are not seconds
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def webhook_body(event: Event) -> bytes:
    """The JSON a receiver gets. ``type``/``timestamp``/``data`` follow the
    Standard Webhooks payload recommendation; ``seq`` and ``sent_ns`` are this
    lab's instrumentation, so the receiver can measure exact latency."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    doc = {
        "type": event.type,
        "timestamp": stamp,
        "data": event.payload,
        "seq": event.seq,
        "sent_ns": event.sent_ns,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


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


class Provider:
    """The provider's state and tasks; lives on the server's loop."""

    def __init__(
        self, hub: EventHub, config: ProviderConfig, clock: Callable[[], float] = time.time
    ):
        self.hub = hub
        self.config = config
        self.clock = clock
        self.policy = RetryPolicy(config.schedule, config.jitter, random.Random(config.seed))
        self.outbox = Outbox(config.outbox_path, clock)
        self.pool = ConnectionPool(max_idle_per_key=config.max_in_flight)
        self._subs: dict[str, Subscription] = {s.id: s for s in self.outbox.subscriptions()}
        # Subscriptions the operator allowed to a loopback URL from Python
        # (``subscribe(..., allow_loopback=True)``): kept in memory only, so
        # after a restart they are refused at delivery until allowed again.
        self._loopback_ok: set[str] = set()
        self._in_flight: dict[int, asyncio.Task] = {}
        self._wake = asyncio.Event()
        self._commit_scheduled = False
        self._closed = False
        self._backlog = True  # rows left pending by an earlier run may be due
        self.recent_requests: OrderedDict[str, bytes] = (
            OrderedDict()
        )  # msg_id -> last request bytes
        self.enqueued = 0
        self.last_seq = hub.log.last_seq
        self._subscription = hub.subscribe(maxsize=100_000)
        self._consumer = asyncio.get_running_loop().create_task(self._consume())
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    # -- subscriptions ---------------------------------------------------------------
    async def subscribe(
        self,
        url: str,
        event_types: Sequence[str],
        secret: str | None = None,
        allow_loopback: bool = False,
    ) -> tuple[Subscription, str]:
        """Register ``url`` for ``event_types``; returns it and its secret.

        ``allow_loopback=True`` lets this one subscription use a loopback URL
        even when the provider refuses loopback (the operator's own receiver,
        registered in-process; never reachable from the HTTP API).
        Raises ``URLRefusedError`` (SSRF checks) or ``ValueError``.
        """
        if not isinstance(url, str):
            raise ValueError(f"url must be a string, not {type(url).__name__}")
        if secret is not None and not isinstance(secret, str):
            raise ValueError(f"secret must be a 'whsec_...' string, not {type(secret).__name__}")
        if not isinstance(event_types, (list, tuple)) or not event_types:
            raise ValueError("event_types must be a non-empty list, e.g. ['email.bounced']")
        if not all(isinstance(t, str) and t for t in event_types):
            raise ValueError("every event type must be a non-empty string")
        # Stored normalised (percent-encoded path, IDNA host): as it is sent.
        loopback = self.config.allow_loopback or allow_loopback
        url = (await check_url_async(url, loopback)).url
        secret = secret or signing.generate_secret()
        signing.decode_secret(secret)  # refuse a malformed one now, not at delivery
        sub = self.outbox.add_subscription(url, list(event_types), [secret])
        self._subs[sub.id] = sub
        if allow_loopback:
            self._loopback_ok.add(sub.id)
        return sub, secret

    def rotate_secret(self, sub_id: str, new_secret: str | None = None) -> str:
        """Sign with the new *and* the old secret until ``finish_rotation``."""
        sub = self._subs[sub_id]
        new_secret = new_secret or signing.generate_secret()
        signing.decode_secret(new_secret)
        secrets = [new_secret, *sub.secrets[:1]]
        self.outbox.set_secrets(sub_id, secrets)
        self._subs[sub_id] = Subscription(**{**asdict(sub), "secrets": tuple(secrets)})
        return new_secret

    def finish_rotation(self, sub_id: str) -> None:
        sub = self._subs[sub_id]
        self.outbox.set_secrets(sub_id, list(sub.secrets[:1]))
        self._subs[sub_id] = Subscription(**{**asdict(sub), "secrets": sub.secrets[:1]})

    def enable(self, sub_id: str) -> None:
        self.outbox.enable_subscription(sub_id)
        sub = self._subs[sub_id]
        self._subs[sub_id] = Subscription(
            **{**asdict(sub), "status": "active", "disabled_reason": None}
        )

    def subscriptions(self) -> list[Subscription]:
        return list(self._subs.values())

    def delete(self, sub_id: str) -> bool:
        self._subs.pop(sub_id, None)
        return self.outbox.delete_subscription(sub_id)

    # -- events into the outbox ------------------------------------------------------
    async def _consume(self) -> None:
        sub = self._subscription
        while True:
            event = await sub.get()
            if event is None:
                if sub.overflowed and not self._closed:
                    # We fell behind the hub's queue: catch up from its log.
                    sub = self._subscription = self.hub.subscribe(maxsize=100_000)
                    missed, _ = self.hub.log.since(self.last_seq)
                    self._enqueue(missed)
                    continue
                return
            batch = [event]
            while not sub.queue.empty():  # everything already queued: one transaction
                more = sub.queue.get_nowait()
                if more is None:
                    sub.queue.put_nowait(None)
                    break
                batch.append(more)
            self._enqueue(batch)

    def _enqueue(self, events: list[Event]) -> None:
        items = []
        for event in events:
            if event.seq <= self.last_seq:
                continue
            self.last_seq = event.seq
            body = None
            for s in self._subs.values():
                if s.wants(event.type):
                    body = body or webhook_body(event)
                    items.append((s.id, event.type, event.seq, body))
        if items:
            messages = self.outbox.enqueue(items)  # committed before any attempt: durable
            self.enqueued += len(items)
            # Fast path: start first attempts right away while there is room;
            # the dispatcher picks up the rest from the outbox.
            room = max(0, self.config.max_in_flight - len(self._in_flight))
            for message in messages[:room]:
                self._start(message)
            if len(messages) > room:
                self._backlog = True
                self._wake.set()

    def _start(self, message: Message) -> None:
        task = asyncio.get_running_loop().create_task(self._attempt(message))
        self._in_flight[message.id] = task

    # -- the dispatcher ----------------------------------------------------------------
    async def _dispatch(self) -> None:
        while not self._closed:
            self._wake.clear()
            self._backlog = False
            free = self.config.max_in_flight - len(self._in_flight)
            timeout: float | None = None
            if free <= 0:
                self._backlog = True  # full: wake me when a slot frees
            else:
                exclude = set(self._in_flight)
                due = self.outbox.due(self.clock(), exclude, free)
                for message in due:
                    self._start(message)
                if len(due) == free:
                    self._backlog = True  # there may be more due rows than room
                if len(self._in_flight) < self.config.max_in_flight:
                    next_at = self.outbox.next_due_at(set(self._in_flight))
                    if next_at is not None:
                        timeout = max(0.0, next_at - self.clock())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _attempt(self, message: Message) -> None:
        attempt = message.attempts + 1
        sub = self._subs.get(message.sub_id)
        started_at = self.clock()
        t0 = time.perf_counter()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            if sub is None or sub.status != "active":
                error = "subscription deleted or disabled"
            else:
                loopback = self.config.allow_loopback or sub.id in self._loopback_ok
                target = await check_url_async(sub.url, loopback)
                headers = signing.sign_headers(sub.secrets, message.msg_id, message.body)
                headers["Content-Type"] = "application/json"
                response = await self.pool.post(
                    target.scheme,
                    target.host,
                    target.addresses[0],
                    target.port,
                    target.target,
                    headers,
                    message.body,
                    self.config.timeout_s,
                )
                status = response.status
                self._remember(message.msg_id, response.request_bytes)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
        except URLRefusedError as exc:
            error = f"refused at delivery time: {exc}"
        except (TimeoutError, asyncio.TimeoutError):
            error = f"timed out after {self.config.timeout_s:g} s"
        except (OSError, ProtocolError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration_ms = (time.perf_counter() - t0) * 1000
        next_delay = None
        if status is not None and 200 <= status < 300:
            outcome = "delivered"
        elif status == 410:
            outcome, error = (
                "gone",
                "HTTP 410 Gone: the receiver asked to stop; subscription disabled",
            )
            self._disable(message.sub_id, "receiver answered 410 Gone")
        else:
            if status is not None:
                error = f"HTTP {status}" + (
                    " (redirect not followed)" if 300 <= status < 400 else ""
                )
                if retry_after is not None:
                    error += f", Retry-After {retry_after:g} s"
            if sub is None or sub.status != "active":
                outcome = "dead"
            else:
                next_delay = self.policy.next_delay(attempt, retry_after)
                outcome = "retry" if next_delay is not None else "dead"
        if self._closed:
            return  # stopping: leave the row pending; the next start retries it
        self.outbox.record_attempt(
            message, attempt, started_at, duration_ms, status, error, outcome, next_delay
        )
        self._commit_soon()
        self._in_flight.pop(message.id, None)
        # Wake the dispatcher only when it has something to do: a retry to
        # schedule, or rows waiting for a free slot. (A delivered message
        # needs no database query: the common case stays cheap.)
        if outcome == "retry" or self._backlog:
            self._wake.set()

    def _disable(self, sub_id: str, reason: str) -> None:
        sub = self._subs.get(sub_id)
        if sub is not None:
            self._subs[sub_id] = Subscription(
                **{**asdict(sub), "status": "disabled", "disabled_reason": reason}
            )
        self.outbox.disable_subscription(sub_id, reason)
        self.outbox.kill_pending(sub_id, f"subscription disabled: {reason}")

    def _remember(self, msg_id: str, request: bytes) -> None:
        self.recent_requests[msg_id] = request
        self.recent_requests.move_to_end(msg_id)
        while len(self.recent_requests) > 200:
            self.recent_requests.popitem(last=False)

    def _commit_soon(self) -> None:
        # Many attempts finishing in the same loop iteration share one commit.
        if not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        self._commit_scheduled = False
        if not self._closed:
            self.outbox.commit()

    # -- dead letters -----------------------------------------------------------------
    def replay(self, message_ids: list[int] | None = None) -> int:
        n = self.outbox.replay(message_ids)
        self._backlog = True
        self._wake.set()
        return n

    def status(self) -> dict[str, Any]:
        return {
            **self.outbox.counts(),
            "in_flight": len(self._in_flight),
            "subscriptions": len(self._subs),
            "connections_opened": self.pool.connections_opened,
        }

    # -- shutdown ------------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Stop hook: put what the hub already handed us into the outbox, then
        stop delivering. Pending rows stay pending in the file."""
        if self._closed:
            return
        self._subscription.close()  # wakes the consumer after the queued events
        try:
            await asyncio.wait_for(self._consumer, 1.0)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        self._closed = True
        self._wake.set()
        for task in [self._dispatcher, *self._in_flight.values()]:
            task.cancel()
        await asyncio.gather(self._dispatcher, *self._in_flight.values(), return_exceptions=True)
        self.pool.close()
        self.outbox.close()


# -- HTTP API --------------------------------------------------------------------------
@stream_request_body
class _Base(BodyLimitMixin, JSONErrorsMixin, RequestHandler):
    """The API's handlers: JSON errors, and bodies over 64 KiB refused while
    they are read (``bodylimit``): a subscription or an event is small."""

    def initialize(self, provider: Provider) -> None:
        self.provider = provider

    def prepare(self) -> None:
        # Who may call the API is checked before any body byte is read.
        token = self.provider.config.api_token
        if token is not None and not hmac.compare_digest(
            self._token_sent().encode(), token.encode()
        ):
            self.set_status(401)
            self.set_header("WWW-Authenticate", "Bearer")
            self.set_header("Content-Type", "application/json")
            reason = (
                "this API needs the token printed at start: "
                "'Authorization: Bearer <token>' or '?token=<token>'"
            )
            return self.finish(json.dumps({"error": reason, "status": 401}))
        super().prepare()

    def _token_sent(self) -> str:
        auth = self.request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return self.get_query_argument("token", "")

    def log_exception(self, typ, value, tb) -> None:  # type: ignore[override]
        # A refused registration is an answer (400 with the reason), not a
        # server problem: only unexpected errors are logged.
        if not isinstance(value, HTTPError):
            super().log_exception(typ, value, tb)

    def body_json(self) -> dict:
        try:
            if self.body_too_large:
                raise HTTPError(413, self.too_large_reason())
            doc = json.loads(self.body or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            raise HTTPError(400, "the body is not JSON (or nested too deep)") from None
        if not isinstance(doc, dict):
            raise HTTPError(400, "the body must be a JSON object")
        return doc

    def send(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj, separators=(",", ":")))


def _public(sub: Subscription) -> dict:
    doc = asdict(sub)
    doc.pop("secrets")
    return doc


class SubscriptionsHandler(_Base):
    """Register a URL (``POST {"url", "event_types", "secret"?}``) or list them."""

    async def post(self) -> None:
        doc = self.body_json()
        try:
            sub, secret = await self.provider.subscribe(
                doc.get("url", ""), doc.get("event_types") or [], doc.get("secret")
            )
        except (URLRefusedError, ValueError) as exc:
            raise HTTPError(400, str(exc)) from None
        self.send({**_public(sub), "secret": secret}, 201)

    def get(self) -> None:
        self.send({"subscriptions": [_public(s) for s in self.provider.subscriptions()]})


class SubscriptionHandler(_Base):
    def delete(self, sub_id: str) -> None:
        if not self.provider.delete(sub_id):
            raise HTTPError(404, f"no subscription {sub_id}")
        self.send({"deleted": sub_id})


class EventsHandler(_Base):
    """Something happened at the provider (``POST {"type", "data"}``)."""

    def post(self) -> None:
        doc = self.body_json()
        data = doc.get("data", {})
        if not isinstance(data, dict):
            raise HTTPError(400, "'data' must be a JSON object")
        try:
            event = self.provider.hub.publish(check_event_type(doc.get("type")), data)
        except ValueError as exc:  # the one rule for event types, with its reason
            raise HTTPError(400, str(exc)) from None
        self.send({"seq": event.seq}, 202)


class DeliveriesHandler(_Base):
    """Every attempt: status, duration, error, outcome (``?since=<id>``)."""

    def get(self) -> None:
        try:
            since = parse_number(self.get_query_argument("since", "0"), "since")
        except CursorError as exc:
            raise HTTPError(400, str(exc)) from None
        self.send({"attempts": self.provider.outbox.attempts(since), **self.provider.status()})


class DeadLettersHandler(_Base):
    def get(self) -> None:
        dead = self.provider.outbox.messages("dead")
        self.send({"dead_letters": [_message_doc(m) for m in dead]})


class ReplayHandler(_Base):
    """Replay dead letters: all, or ``{"ids": [...]}``."""

    def post(self) -> None:
        ids = self.body_json().get("ids")
        if ids is not None and not (isinstance(ids, list) and all(_is_row_id(i) for i in ids)):
            raise HTTPError(400, "ids must be a list of message ids (integers)")
        self.send({"replayed": self.provider.replay(ids)})


def _is_row_id(value: Any) -> bool:
    # Not bool (True is an int in Python), and small enough for SQLite's 64 bits.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _message_doc(m: Message) -> dict:
    doc = asdict(m)
    doc["body"] = m.body.decode("utf-8", "replace")
    return doc


# -- building and driving it -----------------------------------------------------------
_hooked: weakref.WeakSet = weakref.WeakSet()


def provider_app(outbox_path: str | Path, **options: Any) -> Callable[[EventHub], Application]:
    """An app factory for ``runtime.start``. Options: see ``ProviderConfig``.

    Every (re)start builds a fresh ``Provider`` that reloads subscriptions and
    pending deliveries from the outbox file: nothing is kept only in memory.
    """
    config = ProviderConfig(str(outbox_path), **options)

    def factory(hub: EventHub) -> Application:
        provider = Provider(hub, config)
        app = Application(routes(provider), hub=hub, provider=provider, log_function=quiet_log)

        def hook_shutdown() -> None:
            server = app.settings.get("server_thread")
            if server is not None and server not in _hooked:
                _hooked.add(server)
                # Looks the provider up at stop time: after a restart it is a new one.
                server.add_shutdown_hook(lambda: server.app.settings["provider"].shutdown())

        asyncio.get_running_loop().call_soon(hook_shutdown)
        return app

    return factory


def routes(provider: Provider) -> list:
    p = {"provider": provider}
    return [
        (r"/subscriptions", SubscriptionsHandler, p),
        (r"/subscriptions/([A-Za-z0-9_]+)", SubscriptionHandler, p),
        (r"/events", EventsHandler, p),
        (r"/deliveries", DeliveriesHandler, p),
        (r"/dead-letters", DeadLettersHandler, p),
        (r"/dead-letters/replay", ReplayHandler, p),
    ]


class ProviderHandle:
    """Kernel-side, blocking access to a provider running in a ``ServerThread``.

    Every call runs on the server's loop through ``server.call``, so no lock
    is needed and the provider is the current one even after a restart.
    """

    def __init__(self, server: Any) -> None:
        self.server = server

    @property
    def provider(self) -> Provider:
        return self.server.app.settings["provider"]

    def _call(self, fn: Callable, *args: Any) -> Any:
        return self.server.call(lambda: fn(self.provider, *args))

    def subscribe(
        self,
        url: str,
        event_types: Sequence[str],
        secret: str | None = None,
        allow_loopback: bool = False,
    ):
        async def go(p: Provider):
            return await p.subscribe(url, event_types, secret, allow_loopback)

        return self.server.call(lambda: go(self.provider), timeout=10)

    def publish(self, type: str, payload: dict | None = None) -> Event:
        return self.server.publish(type, payload or {})

    def status(self) -> dict:
        return self._call(Provider.status)

    def attempts(self, since_id: int = 0) -> list[dict]:
        return self._call(lambda p: p.outbox.attempts(since_id))

    def messages(self, status: str | None = None) -> list[Message]:
        return self._call(lambda p: p.outbox.messages(status))

    def dead_letters(self) -> list[Message]:
        return self.messages("dead")

    def replay(self, message_ids: list[int] | None = None) -> int:
        return self._call(lambda p: p.replay(message_ids))

    def request_bytes(self, msg_id: str | None = None) -> bytes:
        """The exact bytes of the last request sent for ``msg_id`` (default: the latest)."""

        def get(p: Provider) -> bytes:
            if not p.recent_requests:
                raise LookupError("no delivery has been sent yet")
            return (
                p.recent_requests[msg_id] if msg_id else next(reversed(p.recent_requests.values()))
            )

        return self._call(get)

    def rotate_secret(self, sub_id: str, new_secret: str | None = None) -> str:
        return self._call(lambda p: p.rotate_secret(sub_id, new_secret))

    def finish_rotation(self, sub_id: str) -> None:
        self._call(lambda p: p.finish_rotation(sub_id))

    def enable(self, sub_id: str) -> None:
        self._call(lambda p: p.enable(sub_id))

    def delete(self, sub_id: str) -> bool:
        return self._call(lambda p: p.delete(sub_id))

    def subscriptions(self) -> list[Subscription]:
        return self._call(Provider.subscriptions)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is pending or in flight (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s["pending"] == 0 and s["in_flight"] == 0:
                return True
            time.sleep(0.02)
        return False
