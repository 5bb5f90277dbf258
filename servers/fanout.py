"""A server built for fan-out: one event, thousands of connections (notebook 04).

Every published event is broadcast to every connected WebSocket (``/ws``) and
SSE stream (``/sse``), from one ``Broadcaster`` per process. What makes this
differ from notebook 02's room and notebook 03's feed is how the bytes are
made (``fanout_once.py``: naive, or built once for every client) and where
events come from (``fanout_backplane.py``: this process, or Redis across
processes with one global numbering).

Resume: ``?after=N`` or ``Last-Event-ID: N`` (SSE), by ``servers.cursor``.
Beside this core also ``fanout_slow.py`` (a client that stops reading costs
at most a budget) and ``fanout_ops.py`` (health, drain, standalone main).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tornado.web import Application, HTTPError, RequestHandler
from tornado.websocket import WebSocketHandler

from . import fanout_ops, sse_slow
from .close_codes import CloseCode
from .common import JSONErrorsMixin, request_cursor, resolve_cursor
from .cursor import resolve
from .events import Event, EventLog
from .fanout_backplane import BackplaneLink, InMemoryBackplane, RedisBackplane
from .fanout_once import FAN_OUT, MODES
from .fanout_slow import MAX_PENDING_BYTES, Outflow
from .hub import EventHub
from .sse_format import event_text, format_notice

LOG_CAPACITY, LOG_MAX_BYTES = 10_000, 8 * 2**20  # the resume log, bounded in bytes too


class Broadcaster(BackplaneLink):
    """Every connection of this process, and how an event reaches them all.
    The app's ``server.state``; loop thread only (``server.call``). How it
    starts, publishes and stops: ``fanout_backplane.BackplaneLink``."""

    def __init__(self, hub: EventHub, backplane: Any = None, mode: str = "once") -> None:
        self.hub, self.backplane = hub, backplane or InMemoryBackplane()
        self.set_mode(mode)
        self.max_pending_bytes = MAX_PENDING_BYTES  # read on every write: change it live
        self.log = EventLog(LOG_CAPACITY, LOG_MAX_BYTES)
        self.ws: set[FanoutWebSocket] = set()
        self.sse: set[FanoutSSE] = set()
        self.draining, self.slow_consumers, self.delivered_events = False, 0, 0
        self.last_fanout: dict[str, Any] = {}
        self.fanouts: list[dict[str, Any]] = []

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode

    def deliver(self, event: Event) -> None:
        """One event (from the backplane) to every connection."""
        if not self.log.add(event):
            return  # a seq we already have: never send it twice
        self.delivered_events += 1
        started = time.perf_counter()
        FAN_OUT[self.mode](self, event)
        clients = len(self.ws) + len(self.sse)
        self.last_fanout = record = {"seq": event.seq, "mode": self.mode, "clients": clients}
        record["seconds"] = time.perf_counter() - started
        self.fanouts.append(record)
        del self.fanouts[:-1000]

    def drain(self) -> int:
        """Stop serving: 503 on /health, close every client so it moves on."""
        self.draining = True
        closing = len(self.ws) + len(self.sse)
        for handler in list(self.ws):
            handler.close(CloseCode.GOING_AWAY, "server draining: reconnect elsewhere")
        for handler in list(self.sse):
            handler.end_stream()
        return closing


class FanoutWebSocket(JSONErrorsMixin, WebSocketHandler):
    """One subscriber: receives every broadcast; ``?after=N`` resumes."""

    def initialize(self, broadcaster: Broadcaster) -> None:
        self.b, self.outflow = broadcaster, Outflow()

    def prepare(self) -> None:
        if self.b.draining:
            raise HTTPError(503, "server draining: connect to another one")
        self.after = request_cursor(self)
        if self.after is not None:
            resolve_cursor(self.b.log, self.after)  # a 400 before upgrading if never sent

    def get_compression_options(self) -> None:
        return None  # encode-once relies on identical, uncompressed frames

    def open(self) -> None:
        if self.after is not None:  # resolved again: events may have come during the handshake
            replay, notice = resolve(self.b.log, self.after)
            if notice is not None:
                self.write_message(notice)
            for event in replay:
                text = event.to_json()
                self.outflow.track(len(text), self.write_message(text), replay=True)
        self.b.ws.add(self)  # after the replay, on the loop thread: nothing slips between

    def on_message(self, message: str | bytes) -> None:
        pass  # one-way fan-out; client messages are ignored

    def on_close(self) -> None:
        self.b.ws.discard(self)


class FanoutSSE(JSONErrorsMixin, RequestHandler):
    """One SSE stream of every broadcast; ``Last-Event-ID`` (or ``?after=``) resumes."""

    def initialize(self, broadcaster: Broadcaster) -> None:
        self.b, self.outflow = broadcaster, Outflow()
        self._done: asyncio.Future | None = None
        self.cut_slow = False

    async def get(self) -> None:
        if self.b.draining:
            raise HTTPError(503, "server draining: connect to another one")
        after = request_cursor(self, "after", header="Last-Event-ID")
        replay, notice = ([], None) if after is None else resolve_cursor(self.b.log, after)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self.write("retry: 500\n\n")
        if notice is not None:
            self.write(format_notice(notice))
        replayed = 0
        for event in replay:
            text = event_text(event)
            self.write(text)
            replayed += len(text)
        self._done = asyncio.get_running_loop().create_future()
        self.outflow.track(replayed, self.flush(), replay=True)
        self.b.sse.add(self)
        await self._done
        self.b.sse.discard(self)
        if self.cut_slow:  # fanout_slow.cut_sse: the notice is written, end or drop
            await sse_slow.finish_or_drop(self)

    def end_stream(self) -> None:
        """Finish the response (drain, or a slow consumer): the client reconnects."""
        self.b.sse.discard(self)
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def on_connection_close(self) -> None:
        self.end_stream()


def routes(b: Broadcaster) -> list:
    kw = {"broadcaster": b}
    return [(r"/ws", FanoutWebSocket, kw), (r"/sse", FanoutSSE, kw), *fanout_ops.routes(b)]


def make_app(
    hub: EventHub, backplane: Any = None, mode: str = "once", max_pending_bytes: int = 0
) -> Application:
    """The app; its ``server.state`` is the ``Broadcaster``."""
    b = Broadcaster(hub, backplane, mode)
    b.max_pending_bytes = max_pending_bytes or MAX_PENDING_BYTES
    # Awaitable: ``server.call(lambda: server.state.started)`` returns once subscribed.
    b.started = asyncio.get_running_loop().create_task(b.start())
    app = Application(routes(b), hub=hub, state=b, websocket_max_message_size=64 * 1024)
    b.close_when_stopped(app)  # Redis connections
    return app


def factory(backplane_url: str | None = None, mode: str = "once") -> Callable:
    """An app factory for ``runtime.start``: ``factory("redis://...")``."""
    return lambda hub: make_app(hub, RedisBackplane(backplane_url) if backplane_url else None, mode)


def set_mode(server: Any, mode: str) -> None:
    """Switch an in-process server between "naive" and "once" (on its loop)."""
    server.call(server.state.set_mode, mode)


def set_max_pending_bytes(server: Any, limit: int) -> None:
    """Change the slow-consumer budget of an in-process server, live."""
    if limit < 1:
        raise ValueError("max_pending_bytes must be at least 1")
    server.call(setattr, server.state, "max_pending_bytes", int(limit))


def stats(server: Any) -> dict[str, Any]:
    return server.call(fanout_ops.health, server.state)


if __name__ == "__main__":
    fanout_ops.main()
