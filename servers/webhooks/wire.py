"""A small HTTP/1.1 client for deliveries: keep-alive, exact bytes, pinned address.

Why not ``tornado.httpclient.AsyncHTTPClient``? Its default implementation
opens a new TCP connection for every request (it sends ``Connection: close``),
and connection set-up would then dominate the cost of a delivery. This
client keeps one pool of idle connections per (address, port, host) and
reuses them, builds every request byte itself (so the notebook's wire view
shows exactly what went out), and connects to the address the SSRF check
approved rather than resolving the name again. It never follows redirects:
a 3xx is just a status code for the caller to treat as a failure.

Everything here is asyncio streams on the provider's loop: a delivery waits
without blocking the loop, so many subscriptions deliver concurrently.
"""

from __future__ import annotations

import asyncio
import re
import ssl as _ssl
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

MAX_RESPONSE_BYTES = 64 * 1024  # a receiver's answer is read, but not without bound
USER_AGENT = "event-lab-webhooks/1.0"


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    request_bytes: bytes = b""
    reused_connection: bool = False
    response_head: bytes = b""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    requests: int = 0


_STATUS = re.compile(r"[0-9]{3}")  # ASCII only: str.isdigit() also accepts "²"


class ProtocolError(Exception):
    """The peer answered something that is not HTTP/1.x."""


def build_request(
    host: str, port: int, scheme: str, target: str, headers: dict, body: bytes
) -> bytes:
    default_port = 443 if scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    if ":" in host and not host.startswith("["):  # IPv6 literal
        host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    lines = [f"POST {target} HTTP/1.1", f"Host: {host_header}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class ConnectionPool:
    """Idle keep-alive connections, reused by later deliveries to the same place."""

    max_idle_per_key: int = 16
    _idle: dict = field(default_factory=lambda: defaultdict(list))
    connections_opened: int = 0

    async def post(
        self,
        scheme: str,
        host: str,
        address: str,
        port: int,
        target: str,
        headers: dict[str, str],
        body: bytes,
        timeout: float,
    ) -> Response:
        """One POST, bounded by ``timeout`` seconds end to end."""
        request = build_request(host, port, scheme, target, headers, body)
        key = (scheme, address, port, host)
        conn, reused = None, False
        while self._idle[key]:
            candidate = self._idle[key].pop()
            if not candidate.writer.is_closing() and not candidate.reader.at_eof():
                conn, reused = candidate, True
                break
            candidate.writer.close()
        try:
            async with (
                asyncio.timeout(timeout) if hasattr(asyncio, "timeout") else _Timeout(timeout)
            ):
                if conn is None:
                    conn = await self._open(scheme, host, address, port)
                conn.writer.write(request)
                await conn.writer.drain()
                response, keep = await self._read_response(conn.reader)
        except BaseException:
            if conn is not None:
                conn.writer.close()
            raise
        response.request_bytes = request
        response.reused_connection = reused
        conn.requests += 1
        if keep and len(self._idle[key]) < self.max_idle_per_key:
            self._idle[key].append(conn)
        else:
            conn.writer.close()
        return response

    async def post_to(
        self, url: Any, headers: dict[str, str], body: bytes, timeout: float
    ) -> Response:
        """``post`` to a URL ``ssrf`` checked (a ``CheckedURL``): to the address
        it was checked at, so DNS cannot change between check and connect."""
        return await self.post(
            url.scheme, url.host, url.addresses[0], url.port, url.target, headers, body, timeout
        )

    async def _open(self, scheme: str, host: str, address: str, port: int) -> _Conn:
        ctx = _ssl.create_default_context() if scheme == "https" else None
        reader, writer = await asyncio.open_connection(
            address, port, ssl=ctx, server_hostname=host if ctx else None
        )
        self.connections_opened += 1
        return _Conn(reader, writer)

    async def _read_response(self, reader: asyncio.StreamReader) -> tuple[Response, bool]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError(
                "the receiver closed the connection without answering"
            ) from exc
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("response headers too large") from exc
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not _STATUS.fullmatch(parts[1]):
            raise ProtocolError(f"not an HTTP response: {lines[0][:60]!r}")
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_RESPONSE_BYTES:
                raise ProtocolError(f"response body of {length} bytes is too large")
            body = await reader.readexactly(length)
        else:  # delimited by close: read what there is (bounded), never reuse
            body = await reader.read(MAX_RESPONSE_BYTES)
            keep = False
        return Response(status, reason, headers, body, response_head=head), keep

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return bytes(body)
            if len(body) + size > MAX_RESPONSE_BYTES:
                raise ProtocolError("chunked response body too large")
            body += await reader.readexactly(size)
            await reader.readexactly(2)

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.writer.close()
        self._idle.clear()


class _Timeout:
    """``asyncio.timeout`` for Python 3.10."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._handle = None
        self._task = None
        self._expired = False

    async def __aenter__(self):
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self._handle = loop.call_later(self.seconds, self._expire)
        return self

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aexit__(self, exc_type, exc, tb):
        self._handle.cancel()
        if self._expired and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
        return False
