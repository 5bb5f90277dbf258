"""Notebook 03 in depth: the heartbeat checker accepts the solution and rejects wrong handlers."""

from __future__ import annotations

import asyncio

import tornado.iostream
import tornado.web

from lab.exercises import load_solution
from lab.exercises.http_streaming_in_depth import check_heartbeat_sse


class Silent(tornado.web.RequestHandler):
    """TinySSE: no heartbeat at all."""

    def initialize(self, hub, interval=15.0):
        self.hub = hub

    async def get(self):
        self.set_header("Content-Type", "text/event-stream")
        sub = self.hub.subscribe()
        await self.flush()
        try:
            while (event := await sub.get()) is not None:
                self.write(f"id: {event.seq}\ndata: {event.to_json()}\n\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            sub.close()


class PingEvents(Silent):
    """Keeps the connection busy, but with events the client dispatches."""

    def initialize(self, hub, interval=15.0):
        self.hub, self.interval = hub, interval

    async def get(self):
        self.set_header("Content-Type", "text/event-stream")
        sub = self.hub.subscribe()
        await self.flush()
        try:
            while True:
                try:
                    event = await asyncio.wait_for(sub.get(), self.interval)
                except asyncio.TimeoutError:
                    self.write("data: ping\n\n")
                    await self.flush()
                    continue
                if event is None:
                    break
                self.write(f"id: {event.seq}\ndata: {event.to_json()}\n\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            sub.close()


def test_heartbeat_checker_accepts_the_solution():
    fb = check_heartbeat_sse(load_solution("03_heartbeat_sse")["HeartbeatSSE"])
    assert fb, str(fb)


def test_heartbeat_checker_rejects_silence_and_ping_events():
    fb = check_heartbeat_sse(Silent)
    assert not fb and "nothing at all" in str(fb)
    fb = check_heartbeat_sse(PingEvents)
    assert not fb and "must be a comment" in str(fb)
