"""Minimal servers for the browser-client test, run inside the notebook kernel.

* ``GET /sse``: Server-Sent Events, one ``id:``/``event:``/``data:`` block per
  hub event (resumes after ``Last-Event-ID``).
* ``GET /ndjson-finite?after=N&count=K``: K NDJSON lines (backlog after N
  first), then the response ends. Through a buffering proxy the body shows up
  only at that end.
* ``/ws``: a WebSocket that pushes every hub event and echoes each text frame
  back as ``{"type": "echo", "data": ...}``.

Plus the project's own routes: ``servers.streaming`` (``/stream/ndjson``) and
``servers.sse`` (``/stream/sse``) when present, so they are exercised too.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

from tornado.iostream import StreamClosedError
from tornado.web import Application, RequestHandler
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from servers import streaming
from servers.hub import EventHub

try:
    from servers import sse
except ImportError:  # the SSE module is optional for this test
    sse = None


def project_routes(hub: EventHub) -> list:
    return [*streaming.routes(hub), *(sse.routes(hub) if sse is not None else [])]


class SSEHandler(RequestHandler):
    """text/event-stream: the format a browser's EventSource reads."""

    def initialize(self, hub: EventHub) -> None:
        self.hub = hub

    async def get(self) -> None:
        last_id = self.request.headers.get("Last-Event-ID", "")
        after = int(last_id) if last_id.isdigit() else self.hub.log.last_seq
        subscription = self.hub.subscribe()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        try:
            backlog, _ = self.hub.log.since(min(after, self.hub.log.last_seq))
            self.write(": connected\n\n")
            last = after
            for event in backlog:
                self.write(self.block(event))
                last = event.seq
            await self.flush()
            while (event := await subscription.get()) is not None:
                if event.seq > last:
                    self.write(self.block(event))
                    last = event.seq
                    await self.flush()
        except StreamClosedError:
            pass
        finally:
            subscription.close()

    @staticmethod
    def block(event) -> str:
        return f"id: {event.seq}\nevent: {event.type}\ndata: {event.to_json()}\n\n"


class FiniteNDJSONHandler(RequestHandler):
    """Exactly ``count`` events as NDJSON lines, then the response ends."""

    def initialize(self, hub: EventHub) -> None:
        self.hub = hub

    async def get(self) -> None:
        after = int(self.get_query_argument("after", "0"))
        count = int(self.get_query_argument("count", "3"))
        subscription = self.hub.subscribe()
        self.set_header("Content-Type", "application/x-ndjson")
        sent, last = 0, after
        try:
            backlog, _ = self.hub.log.since(after)
            pending = list(backlog)
            while sent < count:
                event = pending.pop(0) if pending else await subscription.get()
                if event is None:
                    break
                if event.seq <= last:
                    continue
                self.write(event.to_json() + "\n")
                await self.flush()
                sent, last = sent + 1, event.seq
        except StreamClosedError:
            return
        finally:
            subscription.close()


# The handshake headers this WebSocket received, as the server saw them: what
# jupyter-server-proxy hands on from the browser (notebook 02 describes it).
HANDSHAKES: list[dict[str, str]] = []


class PushEchoSocket(WebSocketHandler):
    """Pushes hub events to the browser; echoes what the browser sends."""

    def initialize(self, hub: EventHub) -> None:
        self.hub = hub
        self.task: asyncio.Task | None = None

    def prepare(self) -> None:
        headers = {k: v for k, v in self.request.headers.get_all() if k != "Cookie"}
        HANDSHAKES.append({"scheme": self.request.protocol, **headers})

    def check_origin(self, origin: str) -> bool:
        # Only pages served from this machine (the Jupyter page, through the
        # proxy) may open this socket: an exact loopback allowlist, not "*".
        # (Tornado 6.6 skips this for an Origin whose host:port equals Host,
        # which is what a page reached through the proxy sends.)
        return urlsplit(origin).hostname in ("127.0.0.1", "localhost", "::1")

    def open(self) -> None:
        self.subscription = self.hub.subscribe()
        self.task = asyncio.ensure_future(self.push())

    async def push(self) -> None:
        while (event := await self.subscription.get()) is not None:
            try:
                await self.write_message(event.to_json())
            except WebSocketClosedError:
                return

    def on_message(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        self.write_message(json.dumps({"type": "echo", "data": text}))

    def on_close(self) -> None:
        self.subscription.close()
        if self.task is not None:
            self.task.cancel()


def make_app(hub: EventHub) -> Application:
    return Application(
        [
            (r"/sse", SSEHandler, {"hub": hub}),
            (r"/ndjson-finite", FiniteNDJSONHandler, {"hub": hub}),
            (r"/ws", PushEchoSocket, {"hub": hub}),
            *project_routes(hub),
        ],
        hub=hub,
    )


def has_route(pattern: str) -> bool:
    """Whether the project's servers serve ``pattern`` (e.g. ``/stream/sse``)."""
    return any(route[0] in (pattern, pattern + "$") for route in project_routes(EventHub()))
