import tornado.iostream
import tornado.web


class ResumableSSE(tornado.web.RequestHandler):
    """TinySSE that resumes: send `id:`, replay what came after Last-Event-ID."""

    def initialize(self, hub):
        self.hub = hub

    async def get(self):
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        sub = self.hub.subscribe()  # first: an event published now is queued, not lost
        header = self.request.headers.get("Last-Event-ID")
        last = int(header) if header else self.hub.log.last_seq  # none: live only
        replay, _gone = self.hub.log.since(last)  # what the client missed, from the log
        try:
            for event in replay:
                last = await self.send(event, last)
            while (event := await sub.get()) is not None:
                last = await self.send(event, last)
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            sub.close()

    async def send(self, event, last):
        if event.seq <= last:  # replayed already: never twice
            return last
        self.write(f"id: {event.seq}\nevent: {event.type}\ndata: {event.to_json()}\n\n")
        await self.flush()
        return event.seq
