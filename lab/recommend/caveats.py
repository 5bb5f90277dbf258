"""The warnings (``CAVEATS``) added to whatever rule picked: each with its evidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .evidence import (
    CH_BYTES,
    CH_RATE,
    SC_CONNECTIONS,
    SC_SCALEOUT,
    ST_BUFFERING,
    ST_RESUME,
    WE_HEARTBEATS,
    WE_PROXY,
    WS_MEASURED,
    WS_MOBILE,
    WS_RESUME,
    WS_TLS,
    Evidence,
    Source,
)

if TYPE_CHECKING:
    from .rules import Needs

STREAMS = ("websocket", "sse", "ndjson")


@dataclass(frozen=True)
class Caveat:
    name: str
    when: Callable[[Needs, str], bool]
    text: str
    evidence: tuple[Evidence | Source, ...]


CAVEATS: tuple[Caveat, ...] = (
    Caveat(
        "mobile + a long-lived connection",
        lambda n, t: n.mobile and t in STREAMS,
        "On phones, radio wake-ups cost battery more than bytes: do not keep an idle "
        "connection alive with frequent pings; close when idle and resume with the last seq "
        "when the app needs updates again. Where a carrier NAT forgets idle connections, a "
        "heartbeat shorter than its timeout is what makes the drop visible.",
        (WS_MOBILE, WS_RESUME, WE_HEARTBEATS),
    ),
    Caveat(
        "a consumer nobody can POST to, that may be offline",
        lambda n, t: (
            not n.accepts_posts and n.must_wait_for_it and t in STREAMS + ("short_polling",)
        ),
        "Nobody can POST to this consumer (a browser has no URL; a server behind NAT has no "
        "inbound route), so it cannot receive webhooks. Resume only reaches back as far as the "
        "server's replay buffer: size it for the longest absence you promise, and handle the "
        "explicit resync notice (reload state) when a client was away longer.",
        (ST_RESUME, WS_RESUME),
    ),
    Caveat(
        "two-way through proxies and firewalls",
        lambda n, t: t == "websocket" and n.behind_proxies,
        "Some corporate proxies strip the Upgrade header or cut long-lived connections: use "
        "wss:// (TLS hides the upgrade from middleboxes) and keep a fallback of SSE downstream "
        "plus plain POSTs upstream.",
        (WS_TLS, ST_BUFFERING),
    ),
    Caveat(
        "a server consumer's stream behind proxies",
        lambda n, t: n.consumer == "server" and n.behind_proxies and t == "sse",
        "A buffering proxy holds a chunked NDJSON response until it ends. SSE fares better "
        "only where the proxy treats text/event-stream as a stream (jupyter-server-proxy "
        "does; nginx needs X-Accel-Buffering: no; many corporate proxies buffer it too): "
        "test through your proxy, and keep a polling fallback.",
        (ST_BUFFERING, WE_PROXY),
    ),
    Caveat(
        "webhooks at a high rate",
        lambda n, t: t == "webhooks" and n.high_rate,
        "Every event is its own signed POST: at high rates batch events per delivery, or "
        "let the consumer also pull a stream, and watch the provider's outbox.",
        (CH_BYTES, CH_RATE),
    ),
    Caveat(
        "many readings per second",
        lambda n, t: t == "http_posts" and n.high_rate,
        "Every POST carries HTTP headers both ways: at many readings per second batch them "
        "per request, or keep one WebSocket open and send frames.",
        (CH_BYTES, WS_MEASURED),
    ),
    Caveat(
        "many browser connections",
        lambda n, t: n.consumer == "browser" and t in ("websocket", "sse"),
        "Each open client holds a connection (memory and a file descriptor) on the server; "
        "beyond one process, fan out through a backplane such as Redis pub/sub.",
        (SC_CONNECTIONS, SC_SCALEOUT),
    ),
)
