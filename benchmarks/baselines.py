"""Bare Tornado handlers the room's overhead is measured against.

Benchmark baselines only: they have none of the room's guards (any
``Origin`` is accepted, no token, no limits). Notebook 02 defines its own
naive handler in a visible cell to show what that costs.
"""

from __future__ import annotations

from tornado.web import Application
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from servers.websocket_backpressure import mark_retrieved


class EchoHandler(WebSocketHandler):
    """A bare Tornado echo: the baseline for the room's round trip."""

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        self.set_nodelay(True)

    def on_message(self, message: str | bytes) -> None:
        try:
            self.write_message(message, binary=isinstance(message, bytes)).add_done_callback(
                mark_retrieved
            )
        except WebSocketClosedError:
            pass


class BareBroadcastHandler(WebSocketHandler):
    """A plain set of connections and a loop of write_message: the least a
    Tornado broadcast can do."""

    members: set = set()

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        self.set_nodelay(True)
        self.members.add(self)

    def on_close(self) -> None:
        self.members.discard(self)


def bare_app(hub) -> Application:
    BareBroadcastHandler.members = set()
    return Application([(r"/ws/bare", BareBroadcastHandler), (r"/ws/echo", EchoHandler)], hub=hub)
