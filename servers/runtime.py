"""Start, find and stop the lab's servers: one per name per kernel.

Usage from a notebook::

    from servers import polling, runtime
    server = runtime.start("polling", polling.make_app)   # returns once listening
    server.url                  # 'http://127.0.0.1:54321'
    server.publish("order.created", {"id": 1})            # from any thread
    server.stop()               # closes connections, frees the port

``runtime.start(name, ...)`` keeps a registry by name: running the same cell
twice stops the old server first, so nothing leaks and nothing collides.
``runtime.stop_all()`` is the clean-up cell's one line. ``runtime.main`` is
every ``python -m servers.<transport>``.

Each server is a ``ServerThread`` (``servers/server_thread.py``: why a thread,
and its own event loop); the HTTP server under it, with the limits every lab
server gets, is ``servers/http_server.py``.
"""

from __future__ import annotations

import argparse
import atexit
import threading
import time
from collections.abc import Callable
from typing import Any

from .http_server import HOST, LIMIT_DEFAULTS, MiB, PortInUseError
from .server_thread import STOP_TIMEOUT, AppFactory, ServerStoppedError, ServerThread

__all__ = [
    "HOST",
    "LIMIT_DEFAULTS",
    "MiB",
    "STOP_TIMEOUT",
    "AppFactory",
    "PortInUseError",
    "ServerStoppedError",
    "ServerThread",
    "main",
    "running",
    "start",
    "stop_all",
    "tick_until_interrupted",
]


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
    tick_until_interrupted(
        server, args.tick, announce=f"{name} server listening on {server.url} (Ctrl-C to stop)"
    )
    print("stopped", flush=True)


def tick_until_interrupted(
    server: ServerThread,
    tick: float,
    on_tick: Callable[[int], None] | None = None,
    announce: str | None = None,
) -> None:
    """Print ``announce``, then publish a ``tick`` event every ``tick`` s (none
    if 0) until Ctrl-C, then stop the server. The loop of every standalone
    ``python -m servers.X``.

    The announcement is printed inside the ``try``: whoever waits for it (a
    person, a test) may press Ctrl-C the moment it appears, even while
    ``print`` is still returning, and the server must still stop cleanly."""
    try:
        if announce:
            print(announce, flush=True)
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
