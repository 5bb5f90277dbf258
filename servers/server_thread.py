"""One Tornado application on 127.0.0.1, served from its own thread and loop.

Why a thread: the Jupyter kernel runs its own event loop on the main thread,
and a cell that makes a blocking call (``requests.get``, ``ws.recv()``) holds
that thread until it returns. A server on the kernel's loop could never
answer, and the cell would wait forever. A server on its own loop in its own
thread answers while the cell waits.

Notebooks start servers through ``servers.runtime`` (a registry by name, so
running a cell twice replaces the server); this module is the server itself.
The HTTP server under it (limits, accept loop, open connections) is
``servers/http_server.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tornado.ioloop import IOLoop
from tornado.web import Application

from .events import Event
from .http_server import HOST, PortInUseError, TrackingHTTPServer, bind, server_limits
from .hub import EventHub

T = TypeVar("T")
AppFactory = Callable[[EventHub], Application]

STOP_TIMEOUT = 2.0


class ServerStoppedError(RuntimeError):
    """An operation that needs the server's loop, after the server stopped."""


class ServerThread:
    """One Tornado application on 127.0.0.1, served from a daemon thread."""

    def __init__(
        self, factory: AppFactory, name: str = "server", port: int = 0, ssl_options: Any = None
    ) -> None:
        # (duplicates pairs these plain attribute assignments with the e2e JupyterLab
        # fixture's by shape only.)
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
        self._http: TrackingHTTPServer | None = None
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
                sockets = bind(self._last_port)
            except PortInUseError:
                sockets = bind(0)
        else:
            sockets = bind(self.requested_port)
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
        self._http = TrackingHTTPServer(
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
