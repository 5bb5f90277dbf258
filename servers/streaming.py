"""HTTP streaming: one response that never ends, one line per event.

``GET /stream/ndjson?after=N`` answers ``200`` with
``Content-Type: application/x-ndjson`` and no ``Content-Length``. Tornado
therefore sends it with ``Transfer-Encoding: chunked``, and every
``flush()`` puts one chunk on the wire: the client sees each event as soon
as it is published. Events after ``N`` that are still in the log are sent
first, so a client that reconnects with the last ``seq`` it saw misses
nothing.

``?heartbeat=S`` (0, the default: none) writes a ``{"type":"heartbeat"}``
line whenever nothing was sent for S seconds: NDJSON has no comment syntax,
so the heartbeat is a control line the client skips (notebook 06: a NAT
forgets a silent connection; the client's watchdog needs something to hear).

Resume and gaps follow ``servers.cursor``: a cursor this server never
handed out is a ``400``; when some events after it are already gone, a
``{"type": "resync", ...}`` line (``cursor.resync_notice``) comes first. A
client that cannot keep up is not allowed to grow the server's memory: its
queue is bounded, and when it overflows the stream ends with a resync line
(``missed`` null: it catches up from its last ``seq``).

Beside this core, for notebook 03's buffering lesson,
``streaming_buffering.py``: ``GET /stream/ndjson-close`` (the same lines,
close-delimited, HTTP/1.0 style) and ``buffering_proxy_app(upstream)`` (a
proxy that buffers like jupyter-server-proxy 4.6). ``?limit=K`` ends a
stream after K events, so a buffered response finishes.

Run standalone: ``python -m servers.streaming --port 8000`` then
``curl -N http://127.0.0.1:8000/stream/ndjson``.
"""

from __future__ import annotations

import asyncio
import json

from tornado.iostream import StreamClosedError
from tornado.web import Application, RequestHandler

from .common import JSONErrorsMixin, parse_cursor, parse_seconds, resolve_cursor
from .cursor import resync_notice
from .events import EncodedCache, Event
from .hub import EventHub, Subscription
from .streaming_buffering import CloseDelimitedHandler

HEARTBEAT = {"type": "heartbeat"}
MAX_BATCH = 256  # events written per flush when a burst is queued


def encoded_cache(handler: RequestHandler) -> EncodedCache:
    return handler.application.settings.setdefault("encoded_cache", EncodedCache())


def _ndjson(event: Event) -> bytes:
    # The event's own compact JSON, encoded once (the log sized it already).
    return (event.to_json() + "\n").encode()


async def next_batch(sub: Subscription) -> list[Event | None]:
    """The next event and whatever else is already queued (up to
    ``MAX_BATCH``), ending with None once the subscription is closed. Under
    load one flush writes them all: fewer syscalls, same order, no delay
    when idle."""
    batch = [await sub.get()]
    while batch[-1] is not None and len(batch) < MAX_BATCH and not sub.queue.empty():
        batch.append(sub.queue.get_nowait())
    return batch


class NDJSONStreamHandler(JSONErrorsMixin, RequestHandler):
    """A chunked response that carries one JSON event per line, forever."""

    def initialize(self, hub: EventHub) -> None:
        self.hub = hub
        self.subscription: Subscription | None = None

    async def get(self) -> None:
        after = parse_cursor(self)
        limit = parse_cursor(self, "limit")  # 0: endless
        heartbeat = parse_seconds(self, "heartbeat", 0, 0, 3600)  # 0: none
        # Subscribe before reading the backlog, so nothing published in
        # between falls into a gap; duplicates are skipped by seq below.
        self.subscription = sub = self.hub.subscribe()
        try:
            replay, notice = resolve_cursor(self.hub.log, after)  # 400 if never sent
            self.set_header("Content-Type", "application/x-ndjson")
            self.set_header("Cache-Control", "no-cache")
            self.set_header("X-Accel-Buffering", "no")  # ask nginx-like proxies not to buffer
            if notice is not None:
                self.write_line(notice)
            cache, last, sent = encoded_cache(self), after, 0
            batch: list[Event | None] = list(replay)
            while True:
                for event in batch:
                    if event is None or (limit and sent >= limit):
                        break
                    if event.seq > last:
                        self.write(cache.get(event, "ndjson", _ndjson))
                        last, sent = event.seq, sent + 1
                await self.flush()  # one chunk on the wire (the first also sends the headers)
                if (limit and sent >= limit) or None in batch:
                    break
                batch = await self.next_or_heartbeat(sub, heartbeat)
            if sub.overflowed:
                reason = f"client too slow: more than {sub.maxsize} events queued"
                self.write_line(resync_notice(last, self.hub.log.last_seq, reason))
                await self.flush()
        except StreamClosedError:
            pass  # the client went away mid-write; on_connection_close cleans up
        finally:
            sub.close()

    async def next_or_heartbeat(self, sub: Subscription, heartbeat: float) -> list:
        """The next batch; every ``heartbeat`` s without one, a heartbeat line."""
        while True:
            try:
                return await asyncio.wait_for(next_batch(sub), heartbeat or None)
            except asyncio.TimeoutError:
                self.write_line(HEARTBEAT)
                await self.flush()

    def write_line(self, obj: dict) -> None:
        self.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def on_connection_close(self) -> None:
        # Wakes get() above, so the coroutine ends instead of waiting forever.
        if self.subscription is not None:
            self.subscription.close()


def routes(hub: EventHub) -> list:
    return [
        (r"/stream/ndjson", NDJSONStreamHandler, {"hub": hub}),
        (r"/stream/ndjson-close", CloseDelimitedHandler, {"hub": hub}),  # streaming_buffering.py
    ]


def make_app(hub: EventHub) -> Application:
    return Application(routes(hub), hub=hub)


def parse_ndjson_line(line: bytes | str) -> Event | dict:
    """An ``Event`` for an event line, the plain dict for a control line."""
    obj = json.loads(line)
    return Event.from_dict(obj) if "seq" in obj else obj


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "streaming", __doc__.splitlines()[0])
