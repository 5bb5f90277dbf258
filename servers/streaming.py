"""HTTP streaming: one response that never ends, one line per event.

``GET /stream/ndjson?after=N`` answers ``200`` with
``Content-Type: application/x-ndjson`` and no ``Content-Length``. Tornado
therefore sends it with ``Transfer-Encoding: chunked``, and every
``flush()`` puts one chunk on the wire: the client sees each event as soon
as it is published. Events after ``N`` that are still in the log are sent
first, so a client that reconnects with the last ``seq`` it saw misses
nothing.

A client that cannot keep up is not allowed to grow the server's memory: its
queue is bounded, and when it overflows the stream ends with a
``{"type": "stream.resync", ...}`` line telling the client to catch up from
its last ``seq``.

Run standalone: ``python -m servers.streaming --port 8000`` then
``curl -N http://127.0.0.1:8000/stream/ndjson``.
"""

from __future__ import annotations

import json

from tornado.iostream import StreamClosedError
from tornado.web import Application, HTTPError, RequestHandler

from .common import JSONErrorsMixin, parse_cursor
from .events import Event
from .hub import EventHub, Subscription


class NDJSONStreamHandler(JSONErrorsMixin, RequestHandler):
    """A chunked response that carries one JSON event per line, forever."""

    def initialize(self, hub: EventHub) -> None:
        self.hub = hub
        self.subscription: Subscription | None = None

    async def get(self) -> None:
        after = parse_cursor(self)
        if after > self.hub.log.last_seq:
            raise HTTPError(400, f"after={after} is in the future (last is {self.hub.log.last_seq})")
        # Subscribe before reading the backlog, so nothing published in
        # between falls into a gap; duplicates are skipped by seq below.
        self.subscription = self.hub.subscribe()
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # ask nginx-like proxies not to buffer
        backlog, truncated = self.hub.log.since(after)
        last = after
        try:
            if truncated:
                self.write_line({"type": "stream.resync", "after": after, "reason": "log truncated"})
            for event in backlog:
                self.write_line(event.to_dict())
                last = event.seq
            await self.flush()  # sends the headers (and backlog) now
            while (event := await self.subscription.get()) is not None:
                if event.seq <= last:
                    continue
                self.write_line(event.to_dict())
                last = event.seq
                await self.flush()
            if self.subscription.overflowed:
                self.write_line({"type": "stream.resync", "after": last, "reason": "client too slow"})
                await self.flush()
        except StreamClosedError:
            pass  # the client went away mid-write; on_connection_close cleans up
        finally:
            self.subscription.close()

    def write_line(self, obj: dict) -> None:
        self.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def on_connection_close(self) -> None:
        # Wakes get() above, so the coroutine ends instead of waiting forever.
        if self.subscription is not None:
            self.subscription.close()


def routes(hub: EventHub) -> list:
    return [(r"/stream/ndjson", NDJSONStreamHandler, {"hub": hub})]


def make_app(hub: EventHub) -> Application:
    return Application(routes(hub), hub=hub)


def parse_ndjson_line(line: bytes | str) -> Event | dict:
    """An ``Event`` for an event line, the plain dict for a control line."""
    obj = json.loads(line)
    return Event.from_dict(obj) if "seq" in obj else obj


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "streaming", __doc__.splitlines()[0])
