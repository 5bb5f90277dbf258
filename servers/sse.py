"""Server-Sent Events: the browser's built-in push stream (WHATWG HTML 9.2).

``GET /stream/sse`` answers ``200`` with ``Content-Type: text/event-stream``
and ``Cache-Control: no-cache``, then writes one block per event::

    id: 42                       <- the seq; the client echoes it back as Last-Event-ID
    event: price.tick            <- the type (EventSource: addEventListener("price.tick"))
    data: {"seq":42,...}         <- the event as JSON (several data: lines when multi-line)
                                 <- a blank line dispatches the event

plus ``retry: <ms>`` at the start (how long a client waits before
reconnecting) and ``: heartbeat`` comment lines when nothing happened for
``heartbeat`` seconds (proxies close idle connections; clients use them to
notice a dead connection).

Resume: a reconnecting client sends ``Last-Event-ID: <seq>`` (or
``?lastEventId=<seq>`` on a first request); the events after it are replayed
from the hub's bounded log (``servers.cursor.resolve``), after an ``event:
resync`` block when some are already gone. An id this server never handed
out is a ``400``. A feed closed with ``close_feed()`` answers ``204``: the
spec's "stop reconnecting".

Beside this core: ``sse_format.py`` (fields checked), ``sse_slow.py`` (slow
readers cut off), ``sse_auth.py`` (tokens), ``sse_feed.py`` (live settings).

Run standalone: ``python -m servers.sse --port 8000`` then
``curl -N http://127.0.0.1:8000/stream/sse``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tornado.iostream import StreamClosedError
from tornado.web import Application, RequestHandler

from . import common, sse_slow
from .common import JSONErrorsMixin, parse_cursor, parse_seconds, request_cursor, resolve_cursor
from .cursor import resync_notice
from .events import Event
from .hub import EventHub, Subscription
from .sse_auth import TokenHandler, check_auth
from .sse_feed import SSEFeed
from .sse_format import encode_or_skip, format_comment, format_notice
from .streaming import encoded_cache, next_batch


class SSEHandler(JSONErrorsMixin, RequestHandler):
    """An endless ``text/event-stream`` response: replay after Last-Event-ID, then live."""

    def initialize(self, hub: EventHub, feed: SSEFeed, private: bool = False) -> None:
        self.hub, self.feed, self.private = hub, feed, private
        self.subscription: Subscription | None = None

    async def get(self) -> None:
        if self.feed.closed:
            self.set_status(204)  # "this feed is over, stop reconnecting"
            self.finish()
            return
        if self.private:
            check_auth(self, self.feed.auth)
        after = request_cursor(self, "lastEventId", header="Last-Event-ID")
        heartbeat = parse_seconds(self, "heartbeat", -1, 0, 3600)
        self.limit = parse_cursor(self, "limit")  # 0: endless
        self.pretty = self.get_query_argument("pretty", "0") not in ("0", "", "false")
        self.cache = encoded_cache(self)
        self.sent, self.done = 0, False
        # Subscribe before reading the backlog, so nothing published in
        # between falls into a gap; duplicates are skipped by seq below.
        self.subscription = self.hub.subscribe(self.feed.queue_size)
        try:
            if after is None:
                after, replay, notice = self.hub.log.last_seq, [], None
            else:
                replay, notice = resolve_cursor(self.hub.log, after)  # 400 if never sent
            self.feed.handlers.add(self)
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("Cache-Control", "no-cache")
            self.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer this response
            self.write(f"retry: {int(self.feed.retry_ms)}\n\n")
            if notice is not None:
                self.write_notice(notice)
            last = self.write_events(replay, after)
            await self.flush()  # headers, retry and backlog go out now
            if not self.done:
                await self.pump(last, heartbeat)
        except StreamClosedError:
            pass  # the client went away mid-write; on_connection_close cleans up
        finally:
            self.subscription.close()

    async def pump(self, last: int, heartbeat: float) -> None:
        """Live events as they come, a heartbeat comment when there are none."""
        sub = self.subscription
        assert sub is not None
        while not self.done:
            interval = heartbeat if heartbeat >= 0 else self.feed.heartbeat_s
            try:
                batch = await asyncio.wait_for(next_batch(sub), interval or None)
            except asyncio.TimeoutError:
                self.write(format_comment("heartbeat"))
                self.feed.heartbeats_sent += 1
                await self.send()
                continue
            last = self.write_events(batch, last)
            await self.send()
            if batch[-1] is None:
                break
        if sub.overflowed:  # too slow for its bounded queue: say so, then cut it off
            self.feed.overflows += 1
            reason = f"client too slow: more than {sub.maxsize} events queued"
            self.write_notice(resync_notice(last, self.hub.log.last_seq, reason))
            await sse_slow.cut_off(self)

    def write_events(self, events: list[Event | None], last: int) -> int:
        """Write the events after ``last`` (skipping duplicates), up to a
        None (the end) or ``?limit``; return the last seq written."""
        for event in events:
            if event is None or self.done:
                break
            if event.seq > last:
                self.write_event(event)
                last = event.seq
                self.done = bool(self.limit) and self.sent >= self.limit
        return last

    def write_event(self, event: Event) -> None:
        # Encoded once per event (and format), shared by every subscriber.
        sensitive = tuple(sorted(self.feed.sensitive))
        fmt = ("sse", self.pretty, sensitive)
        block = self.cache.get(event, fmt, lambda e: encode_or_skip(e, self.pretty, sensitive))
        self.write(block)
        if block.startswith(b":"):  # skipped, with a comment saying why (sse_format.py)
            self.feed.unencodable += 1
        else:
            self.sent += 1

    def write_notice(self, notice: dict) -> None:
        self.feed.resyncs_sent += 1
        self.write(format_notice(notice))

    async def send(self) -> None:
        sub = self.subscription
        await sse_slow.send(self, lambda: sub is not None and sub.overflowed)

    def on_connection_close(self) -> None:
        self.end_stream()  # wakes get() above, so the coroutine ends

    def on_finish(self) -> None:
        self.feed.handlers.discard(self)

    def end_stream(self) -> None:
        """End this response (the client may reconnect). Loop thread only."""
        if self.subscription is not None:
            self.subscription.close()


def close_feed(feed: SSEFeed) -> int:
    """Close the feed: end open streams, answer 204 from now on. Loop thread
    only (``server.call(sse.close_feed, server.state)``). Returns how many
    streams were ended."""
    feed.closed = True
    handlers = list(feed.handlers)
    for handler in handlers:
        handler.end_stream()
    return len(handlers)


def routes(hub: EventHub, feed: SSEFeed | None = None) -> list:
    """The SSE routes, all reading the one ``feed`` (a fresh one if None)."""
    kw = {"hub": hub, "feed": feed if feed is not None else SSEFeed()}
    return [
        (r"/stream/sse", SSEHandler, kw),
        (r"/stream/sse/private", SSEHandler, {**kw, "private": True}),
        (r"/stream/token", TokenHandler, {"feed": kw["feed"]}),
    ]


def app_with(*route_fns: Callable[[EventHub], list]) -> Callable[[EventHub], Application]:
    """``common.app_with(...)`` plus the SSE routes, a fresh feed per app as its state."""

    def factory(hub: EventHub) -> Application:
        feed = SSEFeed()
        return common.app_with(*route_fns, feed.routes, state=feed)(hub)

    return factory


def make_app(hub: EventHub, feed: SSEFeed | None = None) -> Application:
    """The SSE app; its ``server.state`` is the ``SSEFeed``."""
    feed = feed if feed is not None else SSEFeed()
    return Application(routes(hub, feed), hub=hub, state=feed)


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "sse", __doc__.splitlines()[0])
