"""Run a Tornado application in a background thread, on its own event loop.

Why a thread: the Jupyter kernel runs its own event loop on the main thread,
and a cell that makes a blocking call (``requests.get``, ``ws.recv()``) holds
that thread until it returns. A server on the kernel's loop could never
answer, and the cell would wait forever. A server on its own loop in its own
thread answers while the cell waits.

Usage from a notebook::

    from servers import polling, runtime
    server = runtime.start("polling", polling.make_app)   # returns once listening
    server.url                  # 'http://127.0.0.1:54321'
    server.publish("order.created", {"id": 1})            # from any thread
    server.stop()               # closes connections, frees the port

``runtime.start(name, ...)`` keeps a registry by name: running the same cell
twice stops the old server first, so nothing leaks and nothing collides.
``runtime.stop_all()`` is the clean-up cell's one line.

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
the runtime's accept loop pauses accepting briefly instead and logs one line
every few seconds (see ``_QuietAcceptor``).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import concurrent.futures
import errno
import inspect
import logging
import socket
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from tornado.netutil import bind_sockets
from tornado.web import Application

from .events import Event
from .hub import EventHub

T = TypeVar("T")
AppFactory = Callable[[EventHub], Application]

HOST = "127.0.0.1"  # loopback only: nothing here is meant to be reachable from outside
STOP_TIMEOUT = 2.0

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


class ServerStoppedError(RuntimeError):
    """An operation that needs the server's loop, after the server stopped."""


class _TrackingHTTPServer(HTTPServer):
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
        # Tornado's own add_sockets, with our accept loop instead of
        # tornado.netutil.add_accept_handler (which spins on EMFILE).
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = _QuietAcceptor(sock, self._handle_connection).remove


class _QuietAcceptor:
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


def server_limits(settings: dict[str, Any]) -> dict[str, Any]:
    """The HTTPServer keyword arguments for an app: its settings, else our defaults."""
    return {key: settings.get(key, default) for key, default in LIMIT_DEFAULTS.items()}


def _bind(port: int) -> list:
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


class ServerThread:
    """One Tornado application on 127.0.0.1, served from a daemon thread."""

    def __init__(
        self, factory: AppFactory, name: str = "server", port: int = 0, ssl_options: Any = None
    ) -> None:
        self.name = name
        # An ``ssl.SSLContext`` serves https:// and wss:// (e.g. a trustme CA's cert).
        self.ssl_options = ssl_options
        self.factory = factory
        self.requested_port = port
        self.hub = EventHub()
        self.port: int | None = None
        self._last_port = 0
        self.app: Application | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._http: _TrackingHTTPServer | None = None
        self._shutdown_hooks: list[Callable[[], Any]] = []

    # -- public API, any thread ----------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise ServerStoppedError(f"server {self.name!r} is not running")
        scheme = "https" if self.ssl_options is not None else "http"
        return f"{scheme}://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ServerThread:
        """Bind, start the loop thread, and return once the server listens."""
        if self.running:
            return self
        # A restarted server takes its old port back when it can, so clients
        # that reconnect to the URL they knew find it again.
        if self._last_port and not self.requested_port:
            try:
                sockets = _bind(self._last_port)
            except PortInUseError:
                sockets = _bind(0)
        else:
            sockets = _bind(self.requested_port)
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run,
            args=(sockets, ready, failure),
            name=f"server-{self.name}",
            daemon=True,
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"server {self.name!r} did not start within 10 s")
        if failure:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None
            raise failure[0]
        self.port = self._last_port = sockets[0].getsockname()[1]
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close every connection, stop the loop, join the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            self._thread = None
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            # The loop is wedged or already closing: stop it regardless.
            if not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"server {self.name!r} did not stop within {timeout} s")
        self._thread = None

    @property
    def state(self) -> Any:
        """The transport's own state (its counters, its registrations...).

        The one way in from the kernel: each transport's ``make_app`` passes
        its state object as ``Application(..., state=obj)``. Read or change
        what is not thread-safe through ``call``.
        """
        if self.app is None:
            raise ServerStoppedError(f"server {self.name!r} has not been started")
        return self.app.settings.get("state")

    def publish(self, type: str, payload: dict[str, Any] | None = None) -> Event:
        """Publish one event to every connected client. Any thread."""
        return self.hub.publish(type, payload)

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 5.0) -> T:
        """Run ``fn(*args)`` (a function or coroutine function) on the server
        loop and return its result: the safe way to touch server state."""
        loop = self._loop
        if loop is None or not self.running:
            raise ServerStoppedError(f"server {self.name!r} is not running")

        async def invoke() -> T:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(invoke(), loop).result(timeout)

    def add_shutdown_hook(self, hook: Callable[[], Any | Awaitable[Any]]) -> None:
        """Register clean-up to run on the loop when the server stops
        (cancel a background task, flush a file...)."""
        self._shutdown_hooks.append(hook)

    @property
    def open_connections(self) -> int:
        if self._http is None:
            return 0
        return sum(1 for s in list(self._http.open_streams) if not s.closed())

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"listening on {self.url}" if self.running else "stopped"
        return f"<ServerThread {self.name!r} {state}>"

    # -- server thread -------------------------------------------------------
    def _run(self, sockets: list, ready: threading.Event, failure: list) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # Tornado's wrapper around this loop. Closing through it (not through
        # asyncio) also forgets the loop in Tornado's global map and, on
        # Windows, stops the selector thread Tornado adds: no leak per restart.
        io_loop = IOLoop.current()
        self._loop = loop
        try:
            loop.run_until_complete(self._setup(sockets))
        except BaseException as exc:  # reported to the caller of start()
            failure.append(exc)
            for sock in sockets:
                sock.close()
            self._loop = None
            io_loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            self._loop = None
            self._http = None
            self.port = None
            io_loop.close()
            asyncio.set_event_loop(None)

    async def _setup(self, sockets: list) -> None:
        self.hub.attach(asyncio.get_running_loop())
        self.app = self.factory(self.hub)
        self.app.settings.setdefault("server_thread", self)
        self._http = _TrackingHTTPServer(
            self.app, ssl_options=self.ssl_options, **server_limits(self.app.settings)
        )
        self._http.add_sockets(sockets)

    async def _shutdown(self) -> None:
        self.hub.detach()
        assert self._http is not None
        self._http.stop()  # stop accepting; closes the listening sockets
        for hook in self._shutdown_hooks:
            result = hook()
            if inspect.isawaitable(result):
                await result
        for stream in list(self._http.open_streams):
            stream.close()
        # Let handlers run their on_connection_close / on_close callbacks.
        for _ in range(3):
            await asyncio.sleep(0)
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=0.5)
        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)


# -- the registry: one server per name per kernel ------------------------------
# _registry_lock guards the two dicts and is held only for quick lookups. Each
# name also has its own lock, held across "stop the old server, start the new
# one, register it": two cells (or threads) starting the same name take turns,
# so exactly one server per name runs and it is the registered one, while
# servers with different names still start side by side.
_registry: dict[str, ServerThread] = {}
_name_locks: dict[str, threading.Lock] = {}
_registry_lock = threading.Lock()


def _lock_for(name: str) -> threading.Lock:
    with _registry_lock:
        return _name_locks.setdefault(name, threading.Lock())


def _pop(name: str) -> ServerThread | None:
    with _registry_lock:
        return _registry.pop(name, None)


def start(name: str, factory: AppFactory, port: int = 0, ssl_options: Any = None) -> ServerThread:
    """Start ``factory``'s app as server ``name``, replacing any earlier one."""
    with _lock_for(name):
        old = _pop(name)
        if old is not None:
            old.stop()
        server = ServerThread(factory, name=name, port=port, ssl_options=ssl_options).start()
        with _registry_lock:
            _registry[name] = server
    return server


def running() -> dict[str, ServerThread]:
    with _registry_lock:
        return {name: s for name, s in _registry.items() if s.running}


def stop_all() -> None:
    """Stop every server started through the registry (the clean-up cell).

    Every name ever started is visited, so a start still in progress finishes
    first (it holds its name's lock) and its server is stopped here too,
    instead of being registered after stop_all() returned."""
    with _registry_lock:
        names = list(_name_locks)
    for name in names:
        with _lock_for(name):
            server = _pop(name)
            if server is not None:
                server.stop()


atexit.register(stop_all)


def main(factory: AppFactory, name: str, description: str) -> None:
    """``python -m servers.<name> --port N``: serve until Ctrl-C.

    ``--tick`` publishes a ``tick`` event every so many seconds, so curl or a
    browser pointed at the server has something to watch.
    """
    parser = argparse.ArgumentParser(prog=f"python -m servers.{name}", description=description)
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument(
        "--tick", type=float, default=1.0, help="seconds between demo events (0: none)"
    )
    args = parser.parse_args()
    server = ServerThread(factory, name=name, port=args.port).start()
    print(f"{name} server listening on {server.url} (Ctrl-C to stop)", flush=True)
    tick_until_interrupted(server, args.tick)
    print("stopped", flush=True)


def tick_until_interrupted(
    server: ServerThread, tick: float, on_tick: Callable[[int], None] | None = None
) -> None:
    """Publish a ``tick`` event every ``tick`` s (none if 0) until Ctrl-C,
    then stop the server. The loop of every standalone ``python -m servers.X``."""
    try:
        n = 0
        while True:
            # Short sleeps keep Ctrl-C responsive on Windows too.
            time.sleep(tick or 0.5)
            if tick:
                n += 1
                server.publish("tick", {"n": n})
                if on_tick is not None:
                    on_tick(n)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
