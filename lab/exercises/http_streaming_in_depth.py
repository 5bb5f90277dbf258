"""Checkers for notebook 03 in depth (exercise 1, SSE encoding, is in
``lab/exercises/http_streaming.py`` with the core notebook's checkers)."""

from __future__ import annotations

import threading

import sseclient
import tornado.web

from lab.wire.http import WireView, raw_request
from servers.server_thread import ServerThread

from . import Feedback

INTERVAL = 0.1  # the heartbeat interval the checker asks for, in seconds
QUIET = 0.45  # how long it listens before publishing one event


def check_heartbeat_sse(handler: type) -> Feedback:
    """Exercise 2: ``handler`` (a RequestHandler taking ``hub`` and
    ``interval``) sends a comment line after ``interval`` s without an event,
    and still delivers events."""
    fb = Feedback("Exercise 2: heartbeats in the tiny handler")
    kw = {"interval": INTERVAL}
    app = lambda hub: tornado.web.Application([(r"/sse", handler, {"hub": hub, **kw})])  # noqa: E731
    server = ServerThread(app, name="exercise-heartbeat").start()
    timer = threading.Timer(QUIET, lambda: server.publish("price.tick", {"after": "quiet"}))
    try:
        timer.start()
        raw = raw_request(server.url, "/sse", duration=QUIET + 0.4, until=b'"after":"quiet"')
    finally:
        timer.cancel()
        server.stop()
    view = WireView(raw)
    if not view.head.startswith("HTTP/1.1 200") or "text/event-stream" not in view.head:
        first = view.head.splitlines()[0] if view.head else "nothing"
        return fb.fail(f"the stream answered {first!r}, not 200 text/event-stream")
    body = view.body.decode("utf-8", "replace")
    blocks = body.replace("\r\n", "\n").split("\n\n")
    quiet = []  # the blocks before the event published after the quiet time
    for block in blocks:
        if '"after":"quiet"' in block:
            break
        quiet.append(block)
    lines = [line for block in quiet for line in block.split("\n") if line]
    comments = [line for line in lines if line.startswith(":")]
    events = list(sseclient.SSEClient([view.body]).events())
    if not lines:
        return fb.fail(
            f"nothing at all in {QUIET} s without events (interval={INTERVAL}): send a "
            "comment line when the queue stays empty for `interval` seconds"
        )
    if len(comments) < 2:
        fb.fail(
            f"{len(comments)} comment line(s) in {QUIET} s at interval={INTERVAL}: expected "
            "one every interval (asyncio.wait_for(sub.get(), self.interval))"
        )
    others = [line for line in lines if not line.startswith(":")]
    if others:
        fb.fail(
            f"the quiet stream held {others[0]!r}: a heartbeat must be a comment (a line "
            "starting with ':'), or the client dispatches it as an event"
        )
    if not any('"after":"quiet"' in e.data for e in events):
        fb.fail("the event published after the quiet time never arrived as an event")
    if fb.passed:
        fb.note(f"{len(comments)} heartbeat comments while quiet, then the event, dispatched")
    return fb
