import asyncio

import tornado.iostream
import tornado.web


class HeartbeatSSE(tornado.web.RequestHandler):
    """TinySSE plus a comment line after `interval` seconds without an event."""

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
                except asyncio.TimeoutError:  # nothing to say: say so, as a comment
                    self.write(": heartbeat\n\n")
                    await self.flush()
                    continue
                if event is None:  # the server is stopping
                    break
                self.write(f"id: {event.seq}\nevent: {event.type}\ndata: {event.to_json()}\n\n")
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            sub.close()
