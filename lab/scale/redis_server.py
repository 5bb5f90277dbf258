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
import tempfile
import time
import weakref

from . import reaper

INSTALL_HINT = (
    "install it with your package manager (Debian/Ubuntu: `apt-get install redis-server`, "
    "macOS: `brew install redis`; on Binder it comes from binder/apt.txt)"
)
_live: weakref.WeakSet[RedisServer] = weakref.WeakSet()


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


class RedisServer:
    """``with RedisServer() as r: r.url`` -> ``redis://127.0.0.1:<port>/0``."""

    def __init__(self, port: int = 0) -> None:
        self.requested_port = port
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._dir: str | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("redis-server is not running")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> RedisServer:
        exe = binary()
        if exe is None:
            raise RedisUnavailable(f"redis-server is not installed: {INSTALL_HINT}")
        if self.running:
            return self
        self._dir = tempfile.mkdtemp(prefix="lab-redis-")
        port = self.requested_port or _free_port()
        self.proc = subprocess.Popen(
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
                self._dir,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        reaper.guard(self.proc)  # ends it if this kernel dies before stop()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                output = (
                    self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                )
                self.stop()
                raise RedisUnavailable(f"redis-server exited at start: {output.strip()[-500:]}")
            if ping(port):
                self.port = port
                _live.add(self)
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"redis-server did not answer PING within {timeout} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate (then kill if needed), remove the temp dir. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.port = None
        _live.discard(self)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RedisServer {self.url if self.running else 'stopped'}>"


def stop_all() -> None:
    for server in list(_live):
        server.stop()
