"""How fan-out makes its bytes: per client ("naive") or once for all ("once").

``mode="naive"`` does what a first version does: for each client, serialise
the event and call ``write_message()`` (WebSocket) or ``write()`` +
``flush()`` (SSE), so the JSON, the UTF-8 and the frame header are rebuilt N
times. ``mode="once"`` builds the wire bytes a single time (a complete
unmasked WebSocket text frame, a complete HTTP chunk holding the SSE block)
and hands the very same ``bytes`` object to every connection
(``wsframes.send_bytes``: straight to the socket when nothing is queued).

Why that is safe: a server's WebSocket frames are never masked (RFC 6455
5.1), so without permessage-deflate the frame is identical for every client;
``servers.fanout`` never negotiates compression, and a connection with a
compressor gets its own bytes. For SSE the chunk framing
(``<hex length>\r\n...\r\n``) is what Tornado's ``HTTP1Connection`` would
add to an HTTP/1.1 response; HTTP/1.0 clients get the unchunked bytes.
Everything goes through the connection's own ``IOStream``, so ordering with
Tornado's writes (headers, close frames) is kept. What we give up: Tornado's
per-message byte counters.
"""

from __future__ import annotations

from typing import Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from .events import Event
from .fanout_slow import too_slow
from .sse_format import event_text
from .wsframes import encode_text_frame, send_bytes


def http_chunk(data: bytes) -> bytes:
    """``data`` framed as one HTTP/1.1 chunk (RFC 9112 7.1)."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


def fan_out_naive(b: Any, event: Event) -> None:
    for handler in [h for h in list(b.ws) if not too_slow(b, h, event.seq)]:
        try:
            text = event.to_json()  # per client: the encoding work is repeated N times
            handler.outflow.track(len(text), handler.write_message(text))
        except WebSocketClosedError:
            b.ws.discard(handler)
    for handler in [h for h in list(b.sse) if not too_slow(b, h, event.seq)]:
        text = event_text(event)
        try:
            handler.write(text)
            handler.outflow.track(len(text), handler.flush())
        except StreamClosedError:
            b.sse.discard(handler)


def fan_out_once(b: Any, event: Event) -> None:
    frame = encode_text_frame(event.to_json())
    body = event_text(event).encode("utf-8")
    chunked = http_chunk(body)
    for handler in [h for h in list(b.ws) if not too_slow(b, h, event.seq)]:
        conn = handler.ws_connection
        try:
            if conn is None or conn.is_closing():
                raise StreamClosedError()
            # ``_compressor``: Tornado's per-connection permessage-deflate
            # state; no public API says whether a connection compresses.
            # ``conn.stream``: its IOStream, the only way to write bytes we
            # framed ourselves. Both checked by the Tornado-internals test in
            # tests/test_fanout.py.
            if getattr(conn, "_compressor", None) is not None:
                sent = handler.write_message(event.to_json())  # per-client bytes
            else:
                sent = send_bytes(conn.stream, frame)  # the same bytes object for all
            handler.outflow.track(len(frame), sent)
        except (StreamClosedError, WebSocketClosedError):
            b.ws.discard(handler)
    for handler in [h for h in list(b.sse) if not too_slow(b, h, event.seq)]:
        connection = handler.request.connection
        # ``_chunking_output``: whether Tornado frames this response in
        # chunks (HTTP/1.1) or not (HTTP/1.0); not exposed publicly. Checked,
        # with ``connection.stream``, by the Tornado-internals test in
        # tests/test_fanout.py.
        data = chunked if getattr(connection, "_chunking_output", False) else body
        try:
            handler.outflow.track(len(data), send_bytes(connection.stream, data))
        except StreamClosedError:
            b.sse.discard(handler)


FAN_OUT = {"naive": fan_out_naive, "once": fan_out_once}  # by Broadcaster.mode
MODES = tuple(FAN_OUT)
