"""HTTP streaming: one response that never ends, one line per event.

``GET /stream/ndjson?after=N`` answers ``200`` with
``Content-Type: application/x-ndjson`` and no ``Content-Length``. Tornado
therefore sends it with ``Transfer-Encoding: chunked``, and every
``flush()`` puts one chunk on the wire: the client sees each event as soon
as it is published. Events after ``N`` that are still in the log are sent
first, so a client that reconnects with the last ``seq`` it saw misses
nothing.

A client that cannot keep up is not allowed to grow the server's memory: its
queue is bounded, and when it overflows the stream ends with a
``{"type": "stream.resync", ...}`` line telling the client to catch up from
its last ``seq``.

Two more routes serve notebook 03's buffering lesson:

* ``GET /stream/ndjson-close?after=N&limit=K``: the same lines with neither
  chunking nor a ``Content-Length`` (HTTP/1.0 style): the body ends when
  the server closes the connection. Valid HTTP, but a client cannot tell a
  pause from the end, and ``requests`` holds the whole body until close.
* ``buffering_proxy_app(upstream)``: a tiny reverse proxy that behaves like
  jupyter-server-proxy 4.6: it streams only when the request's ``Accept`` is
  exactly ``text/event-stream`` and otherwise buffers the whole response.

``?limit=K`` ends a stream after K events, so a buffered response finishes
and the learner sees when it finally arrives.

Run standalone: ``python -m servers.streaming --port 8000`` then
``curl -N http://127.0.0.1:8000/stream/ndjson``.
"""

from __future__ import annotations

import json

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import IOStream, StreamClosedError
from tornado.web import Application, HTTPError, RequestHandler

from .common import JSONErrorsMixin, parse_cursor
from .events import EncodedCache, Event
from .hub import EventHub, Subscription

MAX_BATCH = 256  # events written per flush when a burst is queued


def encoded_cache(handler: RequestHandler) -> EncodedCache:
    return handler.application.settings.setdefault("encoded_cache", EncodedCache())


def event_dict(event: Event) -> dict:
    """The event as the JSON object every transport sends."""
    return event.to_dict()


def _ndjson(event: Event) -> bytes:
    # The event's own compact JSON, encoded once (the log sized it already).
    return (event.to_json() + "\n").encode()


class NDJSONStreamHandler(JSONErrorsMixin, RequestHandler):
    """A chunked response that carries one JSON event per line, forever."""

    def initialize(self, hub: EventHub) -> None:
        self.hub = hub
        self.subscription: Subscription | None = None

    async def get(self) -> None:
        after = parse_cursor(self)
        if after > self.hub.log.last_seq:
            raise HTTPError(
                400, f"after={after} is in the future (last is {self.hub.log.last_seq})"
            )
        limit = parse_cursor(self, "limit")  # 0: endless
        sent = 0
        # Subscribe before reading the backlog, so nothing published in
        # between falls into a gap; duplicates are skipped by seq below.
        self.subscription = self.hub.subscribe()
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # ask nginx-like proxies not to buffer
        backlog, truncated = self.hub.log.since(after)
        last = after
        try:
            if truncated:
                self.write_line(
                    {"type": "stream.resync", "after": after, "reason": "log truncated"}
                )
            cache = encoded_cache(self)
            for event in backlog:
                self.write(cache.get(event, "ndjson", _ndjson))
                last = event.seq
                sent += 1
                if limit and sent >= limit:
                    break
            await self.flush()  # sends the headers (and backlog) now
            if limit and sent >= limit:
                return
            queue = self.subscription.queue
            while (event := await self.subscription.get()) is not None:
                # Under load, write what is already queued in one flush (one
                # chunk): fewer syscalls, same order, no delay when idle.
                batch = [event]
                while len(batch) < MAX_BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                for item in batch:
                    if item is None or item.seq <= last:
                        continue
                    self.write(cache.get(item, "ndjson", _ndjson))
                    last = item.seq
                    sent += 1
                    if limit and sent >= limit:
                        break
                await self.flush()
                if (limit and sent >= limit) or batch[-1] is None:
                    break
            if self.subscription.overflowed:
                self.write_line(
                    {"type": "stream.resync", "after": last, "reason": "client too slow"}
                )
                await self.flush()
        except StreamClosedError:
            pass  # the client went away mid-write; on_connection_close cleans up
        finally:
            self.subscription.close()

    def write_line(self, obj: dict) -> None:
        self.write(json.dumps(obj, separators=(",", ":")) + "\n")

    def on_connection_close(self) -> None:
        # Wakes get() above, so the coroutine ends instead of waiting forever.
        if self.subscription is not None:
            self.subscription.close()


class CloseDelimitedHandler(JSONErrorsMixin, RequestHandler):
    """NDJSON lines in a response with neither chunking nor Content-Length.

    HTTP/1.0 style: the end of the body is the end of the connection. Tornado
    would chunk an HTTP/1.1 response, so this handler takes the socket over
    (``detach()``) and writes the status line and headers itself.
    """

    def initialize(self, hub: EventHub) -> None:
        self.hub = hub

    async def get(self) -> None:
        after = parse_cursor(self)
        if after > self.hub.log.last_seq:
            raise HTTPError(
                400, f"after={after} is in the future (last is {self.hub.log.last_seq})"
            )
        limit = parse_cursor(self, "limit")
        subscription = self.hub.subscribe()
        backlog, _ = self.hub.log.since(after)
        stream: IOStream = self.detach()
        stream.set_close_callback(subscription.close)
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/x-ndjson\r\n"
            "Cache-Control: no-cache\r\n"
            "Connection: close\r\n\r\n"  # no length, no chunking: close ends the body
        )
        last, sent = after, 0
        try:
            await stream.write(head.encode())
            pending = list(backlog)
            while not (limit and sent >= limit):
                event = pending.pop(0) if pending else await subscription.get()
                if event is None:
                    break
                if event.seq <= last:
                    continue
                await stream.write((event.to_json() + "\n").encode())
                last, sent = event.seq, sent + 1
        except StreamClosedError:
            pass
        finally:
            subscription.close()
            stream.close()


class BufferingProxyHandler(JSONErrorsMixin, RequestHandler):
    """A reverse proxy with jupyter-server-proxy 4.6's rule: stream the
    response only when ``Accept`` is exactly ``text/event-stream``; otherwise
    wait for the whole upstream body and send it in one piece."""

    SKIP = {"content-length", "transfer-encoding", "connection", "date", "server"}

    def initialize(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")

    async def get(self, path: str) -> None:
        url = f"{self.upstream}/{path}"
        if self.request.query:
            url += "?" + self.request.query
        accept = self.request.headers.get("Accept")
        headers = {"Accept": accept} if accept else {}
        client = AsyncHTTPClient()
        if accept == "text/event-stream":
            await self.progressive(client, url, headers)
        else:
            await self.buffered(client, url, headers)

    def copy_headers(self, status: int, headers) -> None:
        self.set_status(status)
        for name, value in headers.get_all():
            if name.lower() not in self.SKIP:
                self.set_header(name, value)
        self.set_header("X-Proxy-Mode", self.mode)

    async def buffered(self, client: AsyncHTTPClient, url: str, headers: dict) -> None:
        self.mode = "buffered"
        try:
            response = await client.fetch(HTTPRequest(url, headers=headers, request_timeout=600))
        except HTTPClientError as exc:
            if exc.response is None:
                raise HTTPError(502, f"upstream failed: {exc}") from None
            response = exc.response
        except OSError as exc:  # refused, reset, unreachable
            raise HTTPError(502, f"upstream unreachable: {exc}") from None
        self.copy_headers(response.code, response.headers)
        self.finish(response.body or b"")

    async def progressive(self, client: AsyncHTTPClient, url: str, headers: dict) -> None:
        self.mode = "progressive"
        from tornado.httputil import HTTPHeaders, parse_response_start_line

        upstream_headers = HTTPHeaders()
        state = {"status": 200, "started": False}

        def on_header(line: str) -> None:
            if line.startswith("HTTP/"):
                state["status"] = parse_response_start_line(line.strip()).code
            elif line.strip():
                upstream_headers.parse_line(line)

        def on_chunk(chunk: bytes) -> None:
            if self.request.connection.stream.closed():
                return
            if not state["started"]:
                state["started"] = True
                self.copy_headers(state["status"], upstream_headers)
            self.write(chunk)
            self.flush().add_done_callback(lambda f: f.exception())

        try:
            await client.fetch(
                HTTPRequest(
                    url,
                    headers=headers,
                    request_timeout=600,
                    header_callback=on_header,
                    streaming_callback=on_chunk,
                )
            )
        except HTTPClientError as exc:
            if exc.response is None and not state["started"]:
                raise HTTPError(502, f"upstream failed: {exc}") from None
        except StreamClosedError:
            pass  # our client went away
        except OSError as exc:
            if not state["started"]:
                raise HTTPError(502, f"upstream unreachable: {exc}") from None
        if not state["started"]:
            self.copy_headers(state["status"], upstream_headers)
        if not self.request.connection.stream.closed():
            self.finish()


def buffering_proxy_app(upstream: str):
    """An app factory for ``runtime.start``: a proxy in front of ``upstream``."""

    def factory(hub: EventHub) -> Application:
        return Application([(r"/(.*)", BufferingProxyHandler, {"upstream": upstream})], hub=hub)

    return factory


def routes(hub: EventHub) -> list:
    return [
        (r"/stream/ndjson", NDJSONStreamHandler, {"hub": hub}),
        (r"/stream/ndjson-close", CloseDelimitedHandler, {"hub": hub}),
    ]


def make_app(hub: EventHub) -> Application:
    return Application(routes(hub), hub=hub)


def parse_ndjson_line(line: bytes | str) -> Event | dict:
    """An ``Event`` for an event line, the plain dict for a control line."""
    obj = json.loads(line)
    return Event.from_dict(obj) if "seq" in obj else obj


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "streaming", __doc__.splitlines()[0])
