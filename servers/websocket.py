"""A small live chat room over WebSockets, pushed through the event hub.

``GET /ws/room?token=T&after=N`` upgrades to a WebSocket (RFC 6455). Every
room message goes through ``hub.publish``, so it gets a sequence number and
lands in the hub's bounded log; a client that comes back with ``after=N``
(or sends ``{"type": "resume", "after": N}``) gets exactly what it missed,
or a ``resync`` notice naming the gap if the log no longer holds it all.

Client -> server, JSON text: ``{"type": "say", "text": "hi"}`` (``"ref"``:
an optional client id) and ``{"type": "resume", "after": 41}``. Server ->
client: events (with ``seq``) and ``room.welcome``, ``resync``,
``room.error`` (bad input; the connection stays open), ``room.slow_consumer``.

This file is the room itself. What production adds lives beside it:
``websocket_guards.py`` (tokens, ``Origin`` allowlist, rate limit, valid
messages), ``websocket_backpressure.py`` (bounded outbox, slow consumers),
``websocket_strict.py`` (RFC 6455 where Tornado departs from it),
``websocket_http.py`` (``POST /room/say``).

Run standalone: ``python -m servers.websocket --port 8000`` (token ``demo``).
"""

from __future__ import annotations

from typing import Any

from tornado.log import gen_log
from tornado.web import Application, HTTPError

from . import websocket_guards as guards
from .close_codes import CloseCode
from .cursor import parse_number, resolve
from .events import EncodedCache
from .hub import EventHub
from .websocket_backpressure import BoundedOutbox
from .websocket_guards import MessageError, OriginAllowlist, origin_refusal  # noqa: F401 (export)
from .websocket_http import SayHandler
from .websocket_strict import StrictHandler, quiet_log

DEFAULTS: dict[str, Any] = {
    "tokens": {"demo": "guest"},  # token -> user name
    "allowed_origins": (),  # exact "scheme://host[:port]" strings (or an OriginAllowlist)
    "max_message_size": 4096,  # bytes; above it the connection closes with 1009
    "rate": 20.0,  # messages per second a connection may send (token bucket)...
    "burst": 40,  # ...with this many in one go
    "send_queue": 200,  # messages queued for one client before it counts as too slow
    "ping_interval": None,  # seconds; None or 0: no pings
    "ping_timeout": None,  # seconds without a pong before dropping (default: the interval)
    "close_timeout": 1.0,  # seconds to wait for the peer's close frame before cutting TCP
    "max_text": 500,  # characters in one chat line
}


class RoomStats:
    """The room's state: counters a notebook reads with ``room_stats(server)``."""

    def __init__(self) -> None:
        self.frames = EncodedCache()  # each event's frame, built once for all members
        self.connected = 0
        self.accepted = 0
        self.refused: dict[int, int] = {}
        self.closed_with: dict[int, int] = {}
        self.slow_consumers = 0
        self.errors_answered = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "frames"}


class RoomHandler(BoundedOutbox, StrictHandler):
    """One member of the room: authenticated, origin-checked, rate-limited."""

    def initialize(self, hub: EventHub, options: dict[str, Any], stats: RoomStats) -> None:
        self.hub, self.options, self.stats = hub, options, stats
        self.subscription = None
        self.bucket = guards.TokenBucket(options["rate"], options["burst"])
        self.init_outbox()

    def prepare(self) -> None:
        # The handshake: refused here, a client gets plain HTTP 401/403, no socket.
        options, hint = self.options, "Authorization: Bearer <token> or ?token="
        try:
            token = guards.bearer_token(self.request, self.get_query_argument("token", None))
            self.user = guards.authenticate(options["tokens"], token, hint)
            guards.require_allowed_origin(self.request, options["allowed_origins"])  # not Host
        except HTTPError as exc:
            self.stats.refused[exc.status_code] = self.stats.refused.get(exc.status_code, 0) + 1
            raise

    def open(self) -> None:
        self.stats.accepted += 1
        self.stats.connected += 1
        self.set_nodelay(True)  # small chat frames: do not wait for Nagle
        # The hub calls send_event on this loop for every event from now on:
        # subscribed before the replay, so nothing falls into a gap.
        self.subscription = self.hub.subscribe_callback(self.send_event)
        self.send({"type": "room.welcome", "user": self.user, "last_seq": self.hub.log.last_seq})
        try:
            after = self.get_query_argument("after", None)
        except HTTPError as exc:  # not UTF-8: after the upgrade, no 400 can be sent
            self._error(f"cannot resume: {exc.log_message}")
            return
        if after is not None:
            self._resume(after)

    def _resume(self, raw: Any) -> None:
        try:
            # 0.9, true, "٣" or a cursor in the future: answered, not guessed at.
            after = parse_number(raw, "after")
            replay, notice = resolve(self.hub.log, after)
        except ValueError as exc:
            self._error(f"cannot resume: {exc}")
            return
        if notice is not None:
            self.send(notice)  # some of what it missed is gone: say so first
        self.restart_from(after, replay)

    def on_message(self, message: str | bytes) -> None:
        if not self.bucket.take():
            rate = self.options["rate"]
            self.close(CloseCode.POLICY_VIOLATION, f"rate limit: at most {rate:g} messages/s")
            return
        try:
            self._handle(message)
        except MessageError as exc:
            self._error(str(exc))
        except Exception:
            # A bug, not bad input: Tornado would log it and cut the TCP
            # connection with no close frame. Say so with 1011 instead.
            gen_log.exception("room message from %s failed", self.user)
            self.close(CloseCode.INTERNAL_ERROR, "server error")

    def _handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            raise MessageError("binary frames are not part of this protocol; send JSON text")
        data = guards.parse_message(message)
        kind = data.get("type")
        if kind == "say":
            self.hub.publish("chat.message", guards.validate_say(data, self.options, self.user))
        elif kind == "resume":
            self._resume(data.get("after"))
        elif not isinstance(kind, str):
            raise MessageError(guards.NOT_AN_OBJECT)
        else:
            shown = kind if len(kind) <= 40 else kind[:40] + "..."
            raise MessageError(f"unknown message type {shown!r}; expected 'say' or 'resume'")

    def _error(self, reason: str) -> None:
        self.stats.errors_answered += 1
        self.send({"type": "room.error", "error": reason})

    def on_close(self) -> None:
        self.stats.connected -= 1
        code = self.final_close_code()
        if code is not None:
            self.stats.closed_with[code] = self.stats.closed_with.get(code, 0) + 1
        self.close_outbox()
        if self.subscription is not None:
            self.subscription.close()


def room_options(**overrides: Any) -> dict[str, Any]:
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown room options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    options = {**DEFAULTS, **overrides}
    if not isinstance(options["allowed_origins"], OriginAllowlist):
        options["allowed_origins"] = OriginAllowlist(options["allowed_origins"])
    return options


def routes(hub: EventHub, stats: RoomStats | None = None, **overrides: Any) -> list:
    options, stats = room_options(**overrides), stats or RoomStats()
    return [
        (r"/ws/room", RoomHandler, {"hub": hub, "options": options, "stats": stats}),
        (r"/room/say", SayHandler, {"hub": hub, "options": options, "buckets": {}}),
    ]


def make_app(hub: EventHub, **options: Any) -> Application:
    stats = RoomStats()  # the room's state: server.state
    return Application(routes(hub, stats, **options), hub=hub, state=stats, log_function=quiet_log)


def app_factory(**options: Any):
    """``runtime.start("room", websocket.app_factory(ping_interval=1))``."""
    return lambda hub: make_app(hub, **options)


def room_stats(server: Any) -> dict[str, Any]:
    """The room's counters, read safely on the server's loop."""
    return server.call(lambda: server.state.as_dict())


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "websocket", __doc__.splitlines()[0])
