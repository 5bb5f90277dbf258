"""The slow-reader policy of the SSE streams (``servers.sse``, ``servers.fanout``).

A client that stops reading must not make the server buffer for it without
limit. Its queue (SSE) or its byte budget (fan-out) is bounded; once over,
its stream ends with a resync notice. A reader that does not even take that
notice within ``SLOW_READER_GRACE_S`` is disconnected: the unread bytes must
not sit in the server's write buffer for as long as it keeps the socket open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

SLOW_READER_GRACE_S = 5.0  # after a cut-off, how long the notice may take to drain


def _retrieve(future: asyncio.Future) -> None:
    """A write cut off by a close is not an error: read it so nothing logs it."""
    if not future.cancelled():
        future.exception()


def disconnect(handler: RequestHandler) -> None:
    """Close the client's socket now, whatever is still queued for it.

    ``request.connection.stream`` is not documented API (Tornado's
    ``HTTP1Connection`` keeps the ``IOStream`` as ``stream``): ``finish()``
    waits for the client to read, and no public call drops a response's
    connection. the Tornado-internals test in tests/test_fanout.py fails if it disappears."""
    stream = getattr(handler.request.connection, "stream", None)
    if stream is not None:
        stream.close()


async def finish_or_drop(handler: RequestHandler) -> None:
    """End the response; disconnect a reader that does not take it in time."""
    finished = asyncio.ensure_future(handler.finish())
    finished.add_done_callback(_retrieve)
    done, _ = await asyncio.wait({finished}, timeout=SLOW_READER_GRACE_S)
    if not done:
        disconnect(handler)


async def cut_off(handler: RequestHandler) -> None:
    """End a too-slow reader's response (its notice already written) and its
    connection: a client reconnects on a fresh one and resumes."""
    await finish_or_drop(handler)
    disconnect(handler)


async def send(handler: RequestHandler, overflowed: Callable[[], bool]) -> None:
    """``flush()``, but a reader that is ``overflowed()`` and still does not
    drain what was written within the grace period is disconnected: the
    server never holds more than one batch for it."""
    pending = handler.flush()
    if pending.done():  # the usual case: the socket took it all at once
        return pending.result()
    while True:
        done, _ = await asyncio.wait({pending}, timeout=SLOW_READER_GRACE_S)
        if done:
            return pending.result()
        if overflowed():
            disconnect(handler)
            raise StreamClosedError()
