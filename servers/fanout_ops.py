"""What running fan-out in production adds (``servers.fanout``): health, publish, drain.

``GET /health`` answers 200 with counts while serving and 503 while
draining, for a load balancer's health check; ``POST /drain`` (or SIGTERM
when run standalone) closes every WebSocket with 1001 "going away" and ends
every SSE stream, so clients move to another server and resume. ``POST
/publish`` takes an event from outside (400 for a type that could break a
transport's framing); ``POST /mode`` switches naive / encode-once.

Standalone: ``python -m servers.fanout --port 8000 [--redis redis://...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from functools import partial
from typing import Any

from tornado.web import HTTPError, RequestHandler

from .common import JSONErrorsMixin
from .events import check_event_type

DRAIN_WAIT_S = 1.0  # standalone: how long clients get to leave before the server stops


def health(b: Any) -> dict[str, Any]:
    """The broadcaster's counts, as ``/health`` and ``fanout.stats()`` show them."""
    return {
        "status": "draining" if b.draining else "ok",
        "pid": os.getpid(),
        "backplane": b.backplane.name,
        "mode": b.mode,
        "ws": len(b.ws),
        "sse": len(b.sse),
        "last_seq": b.log.last_seq,
        "delivered_events": b.delivered_events,
        "last_fanout": b.last_fanout,
        "max_pending_bytes": b.max_pending_bytes,
        "slow_consumers": b.slow_consumers,
        "dropped": b.backplane.dropped.count,
    }


class HealthHandler(RequestHandler):
    """Health check for a load balancer: 200 while serving, 503 while draining."""

    def initialize(self, broadcaster: Any) -> None:
        self.b = broadcaster

    def get(self) -> None:
        self.set_status(503 if self.b.draining else 200)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(health(self.b)))


class PublishHandler(JSONErrorsMixin, RequestHandler):
    """``POST /publish {"type": ..., "payload": {...}}`` -> ``{"seq": N}``."""

    def initialize(self, broadcaster: Any) -> None:
        self.b = broadcaster

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise HTTPError(400, "body is not JSON") from None
        except RecursionError:
            raise HTTPError(400, "JSON nested too deeply") from None
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise HTTPError(400, 'expected {"type": "<string>", "payload": {...}}')
        try:
            check_event_type(body["type"])
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        payload = body.get("payload") or {}
        if not isinstance(payload, dict):
            raise HTTPError(400, "payload must be a JSON object")
        seq = await self.b.publish(body["type"], payload)
        self.finish({"seq": seq, "pid": os.getpid()})


class ModeHandler(JSONErrorsMixin, RequestHandler):
    """``POST /mode?mode=naive|once``: switch how fan-out builds its bytes."""

    def initialize(self, broadcaster: Any) -> None:
        self.b = broadcaster

    def post(self) -> None:
        mode = self.get_query_argument("mode", "")
        try:
            self.b.set_mode(mode)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        self.finish({"mode": mode})


class DrainHandler(RequestHandler):
    """``POST /drain``: graceful shutdown, step one (see ``Any.drain``)."""

    def initialize(self, broadcaster: Any) -> None:
        self.b = broadcaster

    def post(self) -> None:
        self.finish({"closing": self.b.drain()})


def routes(b: Any) -> list:
    # The same shape as webhooks/provider_api.py's routes(): a route table, no logic to share.
    kw = {"broadcaster": b}
    return [
        (r"/health", HealthHandler, kw),
        (r"/publish", PublishHandler, kw),
        (r"/mode", ModeHandler, kw),
        (r"/drain", DrainHandler, kw),
    ]


async def drain_gracefully(b: Any, wait_s: float) -> None:
    """1001 to every client, and a moment for them to leave."""
    b.drain()
    deadline = time.monotonic() + wait_s
    while (b.ws or b.sse) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> None:
    """``runtime``'s standalone loop, plus ``--redis``/``--mode``, and a graceful
    drain when stopped by Ctrl-C or SIGTERM (how ``lab/cluster.py`` stops it)."""
    from . import fanout
    from .runtime import ServerThread, tick_until_interrupted

    parser = argparse.ArgumentParser(
        prog="python -m servers.fanout", description=fanout.__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--redis", default=None, help="redis://host:port/0 to use the backplane")
    parser.add_argument("--mode", choices=fanout.MODES, default="once")
    parser.add_argument("--tick", type=float, default=0.0, help="seconds between demo events")
    args = parser.parse_args(argv)
    server = ServerThread(fanout.factory(args.redis, args.mode), name="fanout", port=args.port)
    b = server.start().state
    server.call(lambda: b.started, timeout=10)  # subscribed before we say "listening"
    server.add_shutdown_hook(partial(drain_gracefully, b, DRAIN_WAIT_S))
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C
    pid, name = os.getpid(), b.backplane.name
    tick_until_interrupted(
        server, args.tick, announce=f"fanout listening on {server.url} pid {pid} backplane {name}"
    )
    print("stopped", flush=True)
