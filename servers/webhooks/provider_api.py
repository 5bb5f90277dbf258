"""The provider's HTTP API: what a real dashboard would call.

``POST /subscriptions`` registers a URL (``{"url", "event_types", "secret"?}``),
``GET /subscriptions`` lists them, ``DELETE /subscriptions/<id>`` removes one;
``POST /events`` publishes; ``GET /deliveries?after=<attempt id>`` is the
attempt log; ``GET /dead-letters`` and ``POST /dead-letters/replay``; the health routes
(``GET /health``, ``POST /subscriptions/<id>/enable``) are in ``health_api``.

Also ``provider_app``, the app factory that starts a ``Provider`` behind
these routes (imported from ``provider``, as the notebooks do).

Hardening beside the delivery loop (``provider.py``): an optional bearer
token checked before any body byte is read, bodies over 64 KiB refused while
they are read (``bodylimit``), every refusal a JSON answer with its reason.
Handlers run on the provider's loop and call the ``Provider`` directly.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import weakref
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tornado.web import Application, HTTPError, RequestHandler, stream_request_body

from ..common import JSONErrorsMixin
from ..cursor import CursorError, parse_number
from ..events import check_event_type
from .bodylimit import BodyLimitMixin
from .endpoints import Endpoint
from .outbox import Message
from .receiver import quiet_log
from .ssrf import URLRefusedError

if TYPE_CHECKING:  # provider.py imports this module (for ``provider_app``)
    from ..hub import EventHub
    from .provider import Provider


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


def _public(endpoint: Endpoint) -> dict:
    doc = asdict(endpoint)
    doc.pop("secrets")
    return doc


class EndpointsHandler(_Base):
    """Register a URL (``POST {"url", "event_types", "secret"?}``) or list them."""

    async def post(self) -> None:
        doc = self.body_json()
        try:
            endpoint, secret = await self.provider.endpoints.add(
                doc.get("url", ""), doc.get("event_types") or [], doc.get("secret")
            )
        except (URLRefusedError, ValueError) as exc:
            raise HTTPError(400, str(exc)) from None
        self.send({**_public(endpoint), "secret": secret}, 201)

    def get(self) -> None:
        self.send({"subscriptions": [_public(e) for e in self.provider.endpoints.all()]})


class EndpointHandler(_Base):
    def delete(self, sub_id: str) -> None:
        if not self.provider.endpoints.delete(sub_id):
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
    """Every attempt: status, duration, error, outcome. ``?after=<id>``: only
    the attempts logged after that one (resume from the last id you saw)."""

    def get(self) -> None:
        try:
            after = parse_number(self.get_query_argument("after", "0"), "after")
        except CursorError as exc:
            raise HTTPError(400, str(exc)) from None
        self.send({"attempts": self.provider.outbox.attempts(after), **self.provider.status()})


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


def routes(provider: Provider) -> list:
    # The same shape as servers/fanout_ops.py's routes(): a route table, no logic to share.
    from .health_api import health_routes  # imports this module's _Base

    p = {"provider": provider}
    return [
        (r"/subscriptions", EndpointsHandler, p),
        (r"/subscriptions/([A-Za-z0-9_]+)", EndpointHandler, p),
        (r"/events", EventsHandler, p),
        (r"/deliveries", DeliveriesHandler, p),
        (r"/dead-letters", DeadLettersHandler, p),
        (r"/dead-letters/replay", ReplayHandler, p),
        *health_routes(provider),
    ]


_hooked: weakref.WeakSet = weakref.WeakSet()


def provider_app(outbox_path: str | Path, **options: Any) -> Callable[[EventHub], Application]:
    """An app factory for ``runtime.start``; options: ``ProviderConfig``. Every
    (re)start builds a fresh ``Provider`` (``server.state``) that reloads the
    endpoints and pending deliveries from the outbox file."""
    from .provider import Provider, ProviderConfig

    config = ProviderConfig(str(outbox_path), **options)

    def factory(hub: EventHub) -> Application:
        provider = Provider(hub, config)
        app = Application(routes(provider), hub=hub, state=provider, log_function=quiet_log)

        # servers/fanout.py registers its stop hook the same way: the runtime
        # offers no hook to a factory, it sets "server_thread" after we return.
        def hook_shutdown() -> None:
            server = app.settings.get("server_thread")
            if server is not None and server not in _hooked:
                _hooked.add(server)
                # Looks the provider up at stop time: after a restart it is a new one.
                server.add_shutdown_hook(lambda: server.state.shutdown())

        asyncio.get_running_loop().call_soon(hook_shutdown)
        return app

    return factory
