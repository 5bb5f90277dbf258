"""Server WebSocket frames built once and written straight to the socket.

A server's frames are never masked (RFC 6455 5.1), so without
permessage-deflate one event's frame is the same bytes for every client: it
can be built once (``encode_text_frame``) and handed to every connection
(``send_bytes``). Notebook 02's room and notebook 04's fan-out server both
write this way; ``write_message()`` would rebuild the frame and allocate a
Task for each client and each message.
"""

from __future__ import annotations

import struct
from asyncio import Future
from typing import Any

from tornado.iostream import SSLIOStream, StreamClosedError


def encode_text_frame(payload: bytes | str) -> bytes:
    """One complete, unmasked WebSocket text frame (FIN=1, opcode 1)."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + data


def send_bytes(stream: Any, data: bytes) -> Future | None:
    """Write ``data`` to a Tornado ``IOStream``, skipping its bookkeeping when
    we can. Returns ``None`` when the kernel took every byte, else the
    stream's write Future, which resolves once the rest has been flushed (the
    caller's backpressure signal).

    ``IOStream.write`` allocates a Future per call and resolves it through a
    loop callback: at 10,000 clients that is 10,000 objects and callbacks per
    broadcast. When nothing is queued on the stream, a non-blocking
    ``socket.send`` puts the bytes straight into the kernel's buffer, in order
    (the stream's buffer is empty, so nothing can overtake). Whatever the
    kernel does not take (a slow reader) goes through ``stream.write``, which
    queues it and keeps Tornado's flow control. Everything goes through the
    same stream, so ordering with Tornado's own writes (the handshake, close
    frames) is kept. Raises ``StreamClosedError`` if the stream is closed.
    """
    if stream.closed():
        raise StreamClosedError()
    sock = stream.socket
    if stream.writing() or sock is None or isinstance(stream, SSLIOStream):
        return stream.write(data)  # something is queued, or TLS: Tornado's path
    try:
        sent = sock.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        stream.close()
        raise StreamClosedError() from None
    if sent < len(data):
        return stream.write(data[sent:])
    return None
