"""The settings and counters of the SSE endpoints (``servers.sse``): their ``server.state``."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from .sse_auth import StreamAuth


@dataclass
class SSEFeed:
    """The settings and counters of one app's SSE endpoints (its ``server.state``).

    Plain attributes, read by the handlers on every loop turn, so setting
    ``feed.heartbeat_s = 0.5`` from a slider takes effect at once.
    """

    heartbeat_s: float = 15.0
    retry_ms: int = 1000
    queue_size: int = 1000
    closed: bool = False
    sensitive: set[str] = field(default_factory=lambda: {"card_number", "email"})
    auth: StreamAuth = field(default_factory=StreamAuth)
    password: str | None = None  # POST /stream/token's demo login (sse_auth.py)
    heartbeats_sent: int = 0
    resyncs_sent: int = 0
    overflows: int = 0
    unencodable: int = 0  # events skipped because they cannot be written as SSE
    handlers: weakref.WeakSet = field(default_factory=weakref.WeakSet, repr=False)

    def routes(self, hub: Any) -> list:
        """This feed's routes, e.g. ``app_with(streaming.routes, feed.routes, state=feed)``."""
        from .sse import routes

        return routes(hub, self)
