"""The baseline push is measured against: short polling and long polling.

Both read the same ``EventLog`` as every other transport:

* ``GET /events?after=N``: short poll. Answers at once with the events after
  ``N`` (often none: that request was wasted).
* ``GET /events/wait?after=N&timeout=S``: long poll. Holds the request open
  until an event after ``N`` exists or ``S`` seconds pass, so an answer
  almost always carries news.

Both answer ``{"events": [...], "last_seq": L, "truncated": bool}``.
``truncated`` is true when events after ``N`` were already dropped from the
bounded log: the client missed some and should resync, and is told so.

Run standalone: ``python -m servers.polling --port 8000`` then
``curl 'http://127.0.0.1:8000/events?after=0'``.
"""

from __future__ import annotations

import json

from tornado.web import Application, HTTPError, RequestHandler

from .common import JSONErrorsMixin, parse_cursor, parse_seconds
from .hub import EventHub

MAX_WAIT_S = 30.0


class _EventsHandler(JSONErrorsMixin, RequestHandler):
    def initialize(self, hub: EventHub) -> None:
        self.hub = hub

    def cursor(self) -> int:
        after = parse_cursor(self)
        if after > self.hub.log.last_seq:
            raise HTTPError(
                400, f"after={after} is in the future (last is {self.hub.log.last_seq})"
            )
        return after

    def answer(self, events: list, truncated: bool) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        body = {
            "events": [e.to_dict() for e in events],
            "last_seq": self.hub.log.last_seq,
            "truncated": truncated,
        }
        self.finish(json.dumps(body, separators=(",", ":")))


class ShortPollHandler(_EventsHandler):
    """Short poll: whatever is new after ``after``, right now, maybe nothing."""

    def get(self) -> None:
        self.answer(*self.hub.log.since(self.cursor()))


class LongPollHandler(_EventsHandler):
    """Long poll: wait (up to ``timeout`` s) until there is something new."""

    async def get(self) -> None:
        after = self.cursor()
        timeout = parse_seconds(self, "timeout", 20.0, 0, MAX_WAIT_S)
        events, truncated = await self.hub.wait_since(after, timeout)
        if self.request.connection.stream.closed() or not self.hub.running:
            return  # the client gave up, or the server is stopping: nobody to answer
        self.answer(events, truncated)


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
