"""The baseline push is measured against: short polling and long polling.

Both read the same ``EventLog`` as every other transport:

* ``GET /events?after=N``: short poll. Answers at once with the events after
  ``N`` (often none: that request was wasted).
* ``GET /events/wait?after=N&timeout=S``: long poll. Holds the request open
  until an event after ``N`` exists or ``S`` seconds pass, so an answer
  almost always carries news.

Both answer ``{"events": [...], "last_seq": L, "resync": null}``. The
cursor follows ``servers.cursor``: one it never handed out is a ``400``;
when events after ``N`` were already dropped from the bounded log,
``resync`` holds the notice (``cursor.resync_notice``: which ones are gone)
and the client should reload its state.

Run standalone: ``python -m servers.polling --port 8000`` then
``curl 'http://127.0.0.1:8000/events?after=0'``.
"""

from __future__ import annotations

import json
from typing import Any

from tornado.web import Application, RequestHandler

from .common import JSONErrorsMixin, parse_cursor, parse_seconds, resolve_cursor
from .events import Event
from .hub import EventHub

MAX_WAIT_S = 30.0


class _EventsHandler(JSONErrorsMixin, RequestHandler):
    def initialize(self, hub: EventHub) -> None:
        self.hub = hub

    def answer(self, events: list[Event], notice: dict[str, Any] | None) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        body = {
            "events": [e.to_dict() for e in events],
            "last_seq": self.hub.log.last_seq,
            "resync": notice,
        }
        self.finish(json.dumps(body, separators=(",", ":")))


class ShortPollHandler(_EventsHandler):
    """Short poll: whatever is new after ``after``, right now, maybe nothing."""

    def get(self) -> None:
        self.answer(*resolve_cursor(self.hub.log, parse_cursor(self)))


class LongPollHandler(_EventsHandler):
    """Long poll: wait (up to ``timeout`` s) until there is something new."""

    async def get(self) -> None:
        after = parse_cursor(self)
        timeout = parse_seconds(self, "timeout", 20.0, 0, MAX_WAIT_S)
        events, notice = resolve_cursor(self.hub.log, after)  # 400 if never sent
        if not events and notice is None:
            await self.hub.wait_since(after, timeout)  # returns early on news
            events, notice = resolve_cursor(self.hub.log, after)
        # request.connection.stream: no public API says whether the client is
        # still there (HTTP1Connection keeps its IOStream as ``stream``;
        # the Tornado-internals test in tests/test_fanout.py checks it).
        if self.request.connection.stream.closed() or not self.hub.running:
            return  # the client gave up, or the server is stopping: nobody to answer
        self.answer(events, notice)


def routes(hub: EventHub) -> list:
    return [
        (r"/events", ShortPollHandler, {"hub": hub}),
        (r"/events/wait", LongPollHandler, {"hub": hub}),
    ]


def make_app(hub: EventHub) -> Application:
    return Application(routes(hub), hub=hub)


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "polling", __doc__.splitlines()[0])
