"""The HTTP server under every transport: its limits, its port, a calm accept
loop, and a list of every connection so that stopping is immediate.

``servers.runtime.ServerThread`` builds one of these per server; a transport
never touches it. Read this to see what a lab server refuses and why.

Every server gets limits a lab machine can live with (Tornado's own defaults
are a 100 MB body and a one-hour wait for headers). An app changes them in its
settings, e.g. ``Application(routes, max_body_size=10 * MiB)``:

* ``max_body_size`` (default 1 MiB): a larger body is refused while it is
  read, never buffered whole. Tornado answers a bare ``400 Bad Request`` and
  closes the connection, before reading any of the body when Content-Length
  says it is too large, or as soon as a chunked body's running total passes
  the limit. A handler can lower (or raise) it for itself with
  ``self.request.connection.set_max_body_size(n)`` in ``prepare()``.
* ``idle_connection_timeout`` (default 30 s): Tornado uses it as the *header*
  timeout: the clock starts when the server begins waiting for a request's
  first line and stops at the blank line ending its headers. So it closes an
  idle keep-alive connection and a slowloris client trickling partial headers
  alike. It does not apply once the headers are in: an SSE stream, a long
  poll or a WebSocket may stay quiet for as long as it likes.
* ``body_timeout`` (default 30 s): the whole request body must arrive in time.

When the process runs out of file descriptors, ``accept()`` fails with
EMFILE. Tornado would retry at once, forever, logging a traceback each time;
our accept loop pauses accepting briefly instead and logs one line every few
seconds (see ``QuietAcceptor``).
"""

from __future__ import annotations

import errno
import logging
import socket
import time
import weakref
from collections.abc import Callable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from tornado.netutil import bind_sockets

HOST = "127.0.0.1"  # loopback only: nothing here is meant to be reachable from outside

MiB = 1024 * 1024
# Server-wide limits, each overridable in the app's settings (see the module docstring).
LIMIT_DEFAULTS: dict[str, float] = {
    "max_body_size": 1 * MiB,
    "idle_connection_timeout": 30.0,  # also the header timeout, in Tornado
    "body_timeout": 30.0,
}

# Out of file descriptors: stop accepting for this long, and say so at most
# once per ACCEPT_LOG_INTERVAL (the rest are counted into the next message).
ACCEPT_PAUSE_S = 0.5
ACCEPT_LOG_INTERVAL_S = 5.0
ACCEPTS_PER_TURN = 128  # as Tornado: a flood of connections cannot starve the loop
_FD_EXHAUSTED = {
    errno.EMFILE,
    errno.ENFILE,
    errno.ENOBUFS,
    errno.ENOMEM,
    getattr(errno, "WSAEMFILE", errno.EMFILE),  # Windows' "too many open sockets"
}

log = logging.getLogger(__name__)


class PortInUseError(OSError):
    """A fixed port was asked for and something else is listening on it."""


def server_limits(settings: dict[str, Any]) -> dict[str, Any]:
    """The HTTPServer keyword arguments for an app: its settings, else our defaults."""
    return {key: settings.get(key, default) for key, default in LIMIT_DEFAULTS.items()}


def bind(port: int) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1:``port`` (0: any free port)."""
    try:
        return bind_sockets(port, HOST)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise PortInUseError(
                exc.errno,
                f"port {port} on {HOST} is already in use. Use port=0 to let the "
                f"OS choose a free one, or stop the server holding it "
                f"(servers.runtime.stop_all() stops every server of this kernel).",
            ) from exc
        raise


class TrackingHTTPServer(HTTPServer):
    """An HTTPServer that remembers every accepted connection.

    ``HTTPServer.close_all_connections()`` forgets a connection once it is
    upgraded to a WebSocket, and waits for streaming responses to finish.
    Stopping a teaching server must be immediate and complete, so we keep
    our own (weak) set of sockets and close them all.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_streams: weakref.WeakSet[IOStream] = weakref.WeakSet()

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        self.open_streams.add(stream)
        super().handle_stream(stream, address)

    def add_sockets(self, sockets: Any) -> None:
        # Tornado's own TCPServer.add_sockets, with our accept loop instead of
        # tornado.netutil.add_accept_handler (which spins on EMFILE). Private
        # attributes, because Tornado has no public hook for the accept loop:
        # _sockets and _handlers are what TCPServer.stop() closes and removes,
        # _handle_connection wraps each accepted socket in an IOStream (TLS
        # included). tests/test_runtime_limits.py fails if Tornado renames them.
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = QuietAcceptor(sock, self._handle_connection).remove


class QuietAcceptor:
    """Accept connections on a listening socket, like Tornado's
    ``netutil.add_accept_handler``, but calm when file descriptors run out.

    The listening socket stays readable while connections wait in its backlog,
    so when ``accept()`` fails with EMFILE the loop calls us straight back:
    Tornado's handler then spins at a full core and logs a traceback per try.
    Instead we take the socket off the loop for ``ACCEPT_PAUSE_S`` (waiting
    clients stay queued in the kernel's backlog and are served once fds are
    free) and log one line per ``ACCEPT_LOG_INTERVAL_S`` at most.
    """

    def __init__(self, sock: socket.socket, callback: Callable[[socket.socket, Any], None]):
        self.sock = sock
        self.callback = callback
        self.io_loop = IOLoop.current()
        self.removed = False
        self._resume: object | None = None  # the pending call_later handle while paused
        self._failures = 0  # since the last log line
        self._last_log: float | None = None
        self.io_loop.add_handler(sock, self._accept, IOLoop.READ)

    def _accept(self, fd: Any, events: int) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            if self.removed:
                return
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:
                return  # every waiting connection is accepted
            except ConnectionAbortedError:
                continue  # closed while still queued
            except OSError as exc:
                if exc.errno not in _FD_EXHAUSTED:
                    raise
                self._pause(exc)
                return
            self.callback(connection, address)

    def _pause(self, exc: OSError) -> None:
        self.io_loop.remove_handler(self.sock)
        self._resume = self.io_loop.call_later(ACCEPT_PAUSE_S, self._unpause)
        self._failures += 1
        now = time.monotonic()
        if self._last_log is None or now - self._last_log >= ACCEPT_LOG_INTERVAL_S:
            log.warning(
                "cannot accept connections on port %s: %s; pausing accepts for %g s "
                "(%d failed accepts since the last message; at most one message every %g s)",
                self.sock.getsockname()[1],
                exc.strerror or exc,
                ACCEPT_PAUSE_S,
                self._failures,
                ACCEPT_LOG_INTERVAL_S,
            )
            self._last_log, self._failures = now, 0

    def _unpause(self) -> None:
        self._resume = None
        if not self.removed:
            self.io_loop.add_handler(self.sock, self._accept, IOLoop.READ)

    def remove(self) -> None:
        """Stop accepting for good (what TCPServer.stop() calls)."""
        if self.removed:
            return
        self.removed = True
        if self._resume is not None:
            self.io_loop.remove_timeout(self._resume)  # paused: not on the loop now
            self._resume = None
        else:
            self.io_loop.remove_handler(self.sock)
