"""Authentication inside the connection: the token comes in the first message.

``GET /ws/room-first`` upgrades with no credential in the URL, a header or a
cookie (the ``Origin`` allowlist still applies). Then:

* the first message must be ``{"type": "auth", "token": T}`` within
  ``auth_deadline`` seconds, else the server closes with **1008**, policy
  violation (RFC 6455 section 7.4.1), and says why in the reason;
* a wrong or missing token, or any other message first (a ``say``, a binary
  frame, not JSON), closes with 1008 at once;
* nothing is sent before that: the room's welcome, the replay and its events
  start only once the token checks out (``FirstMessageRoom``, a subclass of
  the room's ``RoomHandler``: after the auth message it is the room).

RFC 6455 section 10.5 leaves client authentication to the server. A token in
the URL (``/ws/room?token=``, the room's own way) lands in every access log
the request passes; a message does not (OWASP WebSocket Security Cheat
Sheet, "Token-based authentication"). The price: one round trip before the
first event, and an unauthenticated socket with a timer per connection until
the deadline.

``make_app`` serves both ways side by side, with an access log line per
request at INFO level (what a production server writes), for notebook 02 in
depth. ``python -m servers.websocket_auth --port 8000`` (token ``demo``).
"""

from __future__ import annotations

from typing import Any

from tornado.ioloop import IOLoop
from tornado.log import access_log
from tornado.web import Application, HTTPError, RequestHandler

from . import websocket_guards as guards
from .close_codes import CloseCode
from .hub import EventHub
from .websocket import RoomHandler, RoomStats, routes

AUTH_DEADLINE = 5.0  # seconds from the upgrade to the auth message (the notebook uses 1)
HOW = 'a first message {"type": "auth", "token": "<token>"}'


class AuthStats:
    """What happened to first-message connections, by outcome."""

    def __init__(self) -> None:
        self.authenticated = 0
        self.waiting = 0  # upgraded, not yet authenticated
        self.refused: dict[str, int] = {}  # "deadline", "wrong token", "not auth first"

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(self).items()}


class FirstMessageRoom(RoomHandler):
    """The room, entered with ``{"type": "auth", "token": T}`` as the first message."""

    def initialize(  # type: ignore[override]
        self, hub: EventHub, options: dict[str, Any], stats: RoomStats, auth: AuthStats
    ) -> None:
        super().initialize(hub, options, stats)
        self.auth, self.user, self.deadline = auth, None, None

    def prepare(self) -> None:
        # No credential here. Origin still: a page from another site gets no socket.
        try:
            guards.require_allowed_origin(self.request, self.options["allowed_origins"])
        except HTTPError as exc:
            self.stats.refused[exc.status_code] = self.stats.refused.get(exc.status_code, 0) + 1
            raise

    def open(self) -> None:
        # Upgraded, and silent: no welcome, no events until the token checks out.
        self.auth.waiting += 1
        seconds = self.options["auth_deadline"]
        self.deadline = IOLoop.current().call_later(seconds, self._too_late, seconds)

    def _too_late(self, seconds: float) -> None:
        self.deadline = None
        self._refuse("deadline", f"no auth message within {seconds:g} s")

    def on_message(self, message: str | bytes) -> Any:
        if self.user is not None:
            return super().on_message(message)  # authenticated: the room itself
        if self.deadline is None:
            return None  # the deadline fired and the close is under way
        try:
            data = guards.parse_message(message) if isinstance(message, str) else {}
        except guards.MessageError:
            data = {}
        if data.get("type") != "auth":
            return self._refuse("not auth first", f"authenticate first: send {HOW}")
        token = data.get("token")
        try:
            user = guards.authenticate(
                self.options["tokens"], token if isinstance(token, str) else None, HOW
            )
        except HTTPError as exc:
            return self._refuse("wrong token", exc.log_message or "unknown token")
        self._stop_timer()
        self.auth.waiting -= 1
        self.auth.authenticated += 1
        self.user = user
        super().open()  # the room's welcome (naming the user), resume, events
        return None

    def _refuse(self, why: str, reason: str) -> None:
        self._stop_timer()
        self.auth.refused[why] = self.auth.refused.get(why, 0) + 1
        self.close(CloseCode.POLICY_VIOLATION, reason[:120])  # a close reason fits in 123 bytes

    def _stop_timer(self) -> None:
        if self.deadline is not None:
            IOLoop.current().remove_timeout(self.deadline)
            self.deadline = None

    def on_close(self) -> None:
        self._stop_timer()
        if self.user is not None:
            super().on_close()
            return
        self.auth.waiting -= 1  # never entered the room: nothing of it to undo
        self.close_outbox()
        code = self.final_close_code()
        if code is not None:
            self.stats.closed_with[code] = self.stats.closed_with.get(code, 0) + 1


def access_line(handler: RequestHandler) -> None:
    """One access log line per request, as Tornado's default writes it (status,
    method, URI with its query string, client address, time), at INFO for
    every status: what a production access log keeps."""
    ms = 1000.0 * handler.request.request_time()
    access_log.info("%d %s %.2fms", handler.get_status(), handler._request_summary(), ms)


def make_app(hub: EventHub, auth_deadline: float = AUTH_DEADLINE, **options: Any) -> Application:
    """The room twice: ``/ws/room?token=`` (token in the URL) and ``/ws/room-first``."""
    stats, auth = RoomStats(), AuthStats()
    room_routes = routes(hub, stats, **options)
    first = {**room_routes[0][2]["options"], "auth_deadline": float(auth_deadline)}
    entry = {"hub": hub, "options": first, "stats": stats, "auth": auth}
    return Application(
        [(r"/ws/room-first", FirstMessageRoom, entry), *room_routes],
        hub=hub,
        state=auth,
        log_function=access_line,
    )


def app_factory(**options: Any):
    """``runtime.start("ws-auth", websocket_auth.app_factory(auth_deadline=1))``."""
    return lambda hub: make_app(hub, **options)


def auth_stats(server: Any) -> dict[str, Any]:
    """The first-message counters, read on the server's loop."""
    return server.call(lambda: server.state.as_dict())


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "websocket_auth", __doc__.splitlines()[0])
