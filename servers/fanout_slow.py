"""What a fan-out client that stops reading costs: at most a budget (``servers.fanout``).

A write that the kernel cannot take waits in the connection's buffer in the
server. Unbounded, one client that never reads keeps every event sent to it,
and the server's memory grows with each broadcast. Each connection here may
have at most ``max_pending_bytes`` (default 1 MiB) handed to it and not yet
flushed; past that it is a **slow consumer**: it gets a resync notice
(``servers.cursor``, ``missed`` null: nothing is lost, it is just behind),
then a WebSocket is closed with 1013 ("try again later") and an SSE stream
ends. A client that does not take even that within
``sse_slow.SLOW_READER_GRACE_S`` is disconnected. It reconnects with its last
seq and catches up from the log; everyone else's fan-out never waits for it.
The same policy as the room of notebook 02 and the streams of notebook 03,
counted in bytes here because one event can be large.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from tornado.websocket import WebSocketClosedError

from . import sse_slow
from .close_codes import CloseCode
from .cursor import resync_notice
from .sse_format import format_notice

MAX_PENDING_BYTES = 1024 * 1024  # per connection, on top of the kernel's socket buffer


class Outflow:
    """Bytes handed to one connection that it has not taken yet.

    Tornado keeps what the kernel did not accept in the stream's write
    buffer, whose size has no public accessor (``_write_buffer`` is private).
    What it does offer publicly is a Future per write that resolves once
    every byte written up to then has gone to the kernel. So we count: up by
    a write's size when it leaves something queued, down when its Future
    resolves. A replay on resume is counted apart: it is bounded by the log,
    and only what queues beyond it counts against the client.
    """

    __slots__ = ("pending", "replay")

    def __init__(self) -> None:
        self.pending = 0
        self.replay = 0

    def track(self, nbytes: int, future: asyncio.Future | None, replay: bool = False) -> None:
        if future is None:
            return  # the kernel took every byte: nothing waits in the server
        self.pending += nbytes
        if replay:
            self.replay += nbytes
        future.add_done_callback(partial(self._flushed, nbytes, replay))

    def _flushed(self, nbytes: int, replay: bool, future: asyncio.Future) -> None:
        self.pending -= nbytes
        if replay:
            self.replay -= nbytes
        sse_slow._retrieve(future)

    @property
    def beyond_replay(self) -> int:
        return self.pending - self.replay


def too_slow(b: Any, handler: Any, seq: int) -> bool:
    """Checked before each write of event ``seq``: a connection with more
    than ``b.max_pending_bytes`` still unsent is cut (it may go over by one
    event, never more). Everything up to ``seq - 1`` was written to it."""
    limit = b.max_pending_bytes
    if handler.outflow.beyond_replay <= limit:
        return False
    b.slow_consumers += 1
    how = "Last-Event-ID" if handler in b.sse else "?after="
    reason = f"client too slow: more than {limit} bytes waiting for you; reconnect with {how}"
    notice = resync_notice(seq - 1, b.log.last_seq, reason)
    (cut_sse if handler in b.sse else cut_websocket)(b, handler, notice)
    return True


def cut_websocket(b: Any, handler: Any, notice: dict) -> None:
    """Say why, then close with 1013; the client resumes with ``?after=``."""
    b.ws.discard(handler)
    conn = handler.ws_connection
    if conn is None:
        return  # already closed: on_close has run or will
    try:
        handler.write_message(notice).add_done_callback(sse_slow._retrieve)
    except WebSocketClosedError:
        return
    handler.close(CloseCode.TRY_AGAIN_LATER, "slow consumer: reconnect and resume")
    # Tornado would wait 5 s for the client's close frame; the same grace as
    # SSE keeps one visible number for both. ``conn.stream``: the
    # WebSocketProtocol's IOStream; no public call drops the connection now
    # (the Tornado-internals test in tests/test_fanout.py checks it).
    loop = asyncio.get_running_loop()
    loop.call_later(sse_slow.SLOW_READER_GRACE_S, conn.stream.close)


def cut_sse(b: Any, handler: Any, notice: dict) -> None:
    """Say why and end the stream; the client resumes with Last-Event-ID."""
    b.sse.discard(handler)
    handler.cut_slow = True
    handler.write(format_notice(notice))
    handler.end_stream()
