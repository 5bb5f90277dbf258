"""A throwaway ``redis-server`` on a free loopback port, for the scaling demo.

No persistence (``--save ""``, ``--appendonly no``), its working directory a
temporary folder that is removed on stop, bound to 127.0.0.1 only. When the
binary is not installed, ``RedisUnavailable`` says so (and how to install it)
so the notebook can fall back to the single-process, in-memory default.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

from . import process

INSTALL_HINT = (
    "install it with your package manager (Debian/Ubuntu: `apt-get install redis-server`, "
    "macOS: `brew install redis`; on Binder it comes from binder/apt.txt)"
)


class RedisUnavailable(RuntimeError):
    """No ``redis-server`` binary on PATH, or it would not start."""


def binary() -> str | None:
    return shutil.which("redis-server")


def available() -> bool:
    return binary() is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis on ``port`` answers PING (RESP inline command)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(process.ManagedProcess):
    """``with RedisServer() as r: r.url`` -> ``redis://127.0.0.1:<port>/0``."""

    what = "redis-server"

    def __init__(self, port: int = 0) -> None:
        self.requested_port = port
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("redis-server is not running")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.alive

    def start(self, timeout: float = 10.0) -> RedisServer:
        exe = binary()
        if exe is None:
            raise RedisUnavailable(f"redis-server is not installed: {INSTALL_HINT}")
        if self.running:
            return self
        port = self.requested_port or _free_port()
        self._spawn(
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._tempdir("lab-redis-"),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(lambda: ping(port), timeout)
        self.port = port
        return self

    def _failure(self, message: str) -> Exception:
        return RedisUnavailable(message)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate (then kill if needed), remove the temp dir. Idempotent."""
        super().stop(timeout)
        self.port = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.url if self.running else 'stopped'}>"


def stop_all() -> None:
    process.stop_all(RedisServer)
