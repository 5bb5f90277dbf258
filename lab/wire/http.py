"""HTTP on the wire, by hand: raw bytes off a socket, and views of them.

* ``raw_request()`` sends a bare GET and keeps every byte that arrives (no
  HTTP library in between to tidy them up); ``split_http`` and ``dechunk``
  take a response apart.
* ``WireView`` renders a response with its framing highlighted: the
  chunk-size lines (hex) around each NDJSON line, or the SSE text with its
  ``id:``, ``event:``, ``data:``, ``retry:`` lines and ``: heartbeat``
  comments (notebook 03).
* ``request_view`` shows one request's exact bytes (notebook 01's webhook
  deliveries).
"""

from __future__ import annotations

import html
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import ipywidgets as w


def raw_request(
    url: str,
    path: str,
    headers: dict | None = None,
    duration: float = 0.5,
    until: bytes | None = None,
    max_bytes: int = 1 << 20,
    then: Callable[[], object] | None = None,
) -> bytes:
    """Send a bare HTTP/1.1 GET and return every byte received within
    ``duration`` seconds (or until ``until`` appears, or the server closes).
    ``then()`` is called once the response headers have arrived (e.g. to
    publish events while the stream is open)."""
    parts = urlsplit(url)
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    received = b""
    deadline = time.monotonic() + duration
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        while len(received) < max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            received += data
            if then is not None and b"\r\n\r\n" in received:
                then()
                then = None
            if until is not None and until in received:
                break
    return received


def split_http(raw: bytes) -> tuple[bytes, bytes]:
    """(status line + headers, body) of a raw response."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers in these bytes")
    return head, body


def dechunk(body: bytes) -> list[tuple[bytes, bytes]]:
    """The chunks of a chunked body, as ``(size line, data)`` pairs, in order.
    The last pair is ``(b"0", b"")`` if the response ended. A chunk cut off
    at the end of ``body`` is returned as far as it arrived."""
    chunks = []
    pos = 0
    while pos < len(body):
        end = body.find(b"\r\n", pos)
        if end < 0:
            break
        size_line = body[pos:end]
        size = int(size_line.split(b";")[0], 16)
        data = body[end + 2 : end + 2 + size]
        chunks.append((size_line, data))
        pos = end + 2 + size + 2
        if size == 0:
            break
    return chunks


def _visible(data: bytes) -> str:
    """Bytes as text with CR and LF shown (they matter on the wire)."""
    text = html.escape(data.decode("utf-8", errors="replace"))
    return text.replace("\r", "<span class='ws'>\\r</span>").replace(
        "\n", "<span class='ws'>\\n</span><br>"
    )


_STYLE = (
    "<style>.wire{font-family:monospace;font-size:12px;line-height:1.35;"
    "background:#f7f7f7;padding:6px;border:1px solid #ddd;max-height:360px;overflow:auto}"
    ".wire .ws{color:#aaa}.wire .hex{background:#ffe08a;font-weight:bold}"
    ".wire .head{color:#555}.wire .id{color:#0550ae}.wire .ev{color:#8250df}"
    ".wire .retry{color:#bc4c00}.wire .data{color:#116329}"
    ".wire .cm{color:#999;font-style:italic}</style>"
)


@dataclass
class WireView:
    """Raw response bytes, rendered with their framing highlighted."""

    raw: bytes
    max_items: int = 14

    @property
    def head(self) -> str:
        return split_http(self.raw)[0].decode("latin-1")

    @property
    def chunked(self) -> bool:
        return "transfer-encoding: chunked" in self.head.lower()

    @property
    def chunks(self) -> list[tuple[bytes, bytes]]:
        return dechunk(split_http(self.raw)[1]) if self.chunked else []

    @property
    def body(self) -> bytes:
        """The payload bytes, chunk framing removed."""
        if self.chunked:
            return b"".join(data for _, data in self.chunks)
        return split_http(self.raw)[1]

    def _body_html(self, data: bytes) -> str:
        if "text/event-stream" not in self.head.lower():
            return _visible(data)
        out = []
        for line in data.decode("utf-8", errors="replace").split("\n"):
            css = {"id": "id", "event": "ev", "retry": "retry", "data": "data"}.get(
                line.split(":", 1)[0], ""
            )
            if line.startswith(":"):
                css = "cm"
            text = html.escape(line) + "<span class='ws'>\\n</span>"
            out.append(f"<span class='{css}'>{text}</span>" if css else text)
        return (
            "<br>".join(out[:-1])
            if out and out[-1].startswith("<span class='ws'>")
            else "<br>".join(out)
        )

    def _repr_html_(self) -> str:
        head = split_http(self.raw)[0] + b"\r\n\r\n"
        parts = [f"<div class='head'>{_visible(head)}</div>"]
        if self.chunked:
            for i, (size_line, data) in enumerate(self.chunks):
                if i == self.max_items:
                    parts.append(f"<i>... {len(self.chunks) - i} more chunks</i>")
                    break
                size = int(size_line.split(b";")[0], 16)
                parts.append(
                    f"<span class='hex' title='{size} bytes follow'>"
                    f"{html.escape(size_line.decode())}</span><span class='ws'>\\r\\n</span>"
                    f" <span class='cm'>&larr; {size} bytes</span><br>"
                    f"{self._body_html(data)}<span class='ws'>\\r\\n</span><br>"
                )
        else:
            parts.append(self._body_html(self.body))
        return _STYLE + "<div class='wire'>" + "".join(parts) + "</div>"


def request_view(raw: bytes, max_body: int = 600) -> w.HTML:
    """A raw HTTP request, as a widget: ␍␊ marks each CRLF, ``webhook-*`` headers
    stand out, and the byte counts of head and body (notebook 01's deliveries)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    out = []
    for i, line in enumerate(lines):
        text = html.escape(line)
        if i == 0:
            text = f"<b>{text}</b>"
        elif line.lower().startswith("webhook-"):
            text = f"<span style='background:#fff3b0'>{text}</span>"
        out.append(f"{text}<span style='color:#999'>␍␊</span>")
    out.append(
        "<span style='color:#999'>␍␊</span>  <i style='color:#999'>(blank line: end of headers)</i>"
    )
    shown = body[:max_body].decode("utf-8", "replace")
    more = (
        f"<span style='color:#999'> … {len(body) - max_body} more bytes</span>"
        if len(body) > max_body
        else ""
    )
    out.append(html.escape(shown) + more)
    summary = (
        f"request line + headers: <b>{len(head) + 4}</b> bytes · body: <b>{len(body)}</b> bytes · "
        f"total on the wire: <b>{len(raw)}</b> bytes"
    )
    return w.HTML(
        "<pre style='font-size:12px;line-height:1.35;white-space:pre-wrap'>"
        + "\n".join(out)
        + f"</pre><div>{summary}</div>"
    )
