"""Notebook 03's buffering lesson: two ways a stream arrives all at once.

* ``GET /stream/ndjson-close?after=N&limit=K`` (``CloseDelimitedHandler``,
  routed by ``servers.streaming``): the same lines with neither chunking nor
  a ``Content-Length`` (HTTP/1.0 style): the body ends when the server
  closes the connection. Valid HTTP, but a client cannot tell a pause from
  the end, and ``requests`` holds the whole body until close.
* ``buffering_proxy_app(upstream)``: a tiny reverse proxy that behaves like
  jupyter-server-proxy 4.6: it streams only when the request's ``Accept`` is
  exactly ``text/event-stream`` and otherwise buffers the whole response.
"""

from __future__ import annotations

import json

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders, parse_response_start_line
from tornado.iostream import IOStream, StreamClosedError
from tornado.web import Application, HTTPError, RequestHandler

from .common import JSONErrorsMixin, parse_cursor, resolve_cursor
from .hub import EventHub


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
        limit = parse_cursor(self, "limit")
        backlog, notice = resolve_cursor(self.hub.log, after)  # 400 if never sent
        subscription = self.hub.subscribe()
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
            if notice is not None:
                await stream.write((json.dumps(notice, separators=(",", ":")) + "\n").encode())
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
        upstream_headers = HTTPHeaders()
        state = {"status": 200, "started": False}

        def on_header(line: str) -> None:
            if line.startswith("HTTP/"):
                state["status"] = parse_response_start_line(line.strip()).code
            elif line.strip():
                upstream_headers.parse_line(line)

        # request.connection.stream: no public API says whether our client
        # is still connected before we write to it (HTTP1Connection keeps its
        # IOStream as ``stream``; the Tornado-internals test in tests/test_fanout.py checks it).
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
