"""Fan-out server *processes* (``python -m servers.fanout``) for scale-out.

Each ``ServerProcess`` is a separate Python process with its own connections,
its own event loop and its own log, like a real deployment's replicas. The
notebook starts two, optionally pointed at a Redis backplane, and kills or
drains one to show failover.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import requests

from . import reaper

ROOT = Path(__file__).resolve().parents[2]
_live: weakref.WeakSet[ServerProcess] = weakref.WeakSet()
_LISTENING = re.compile(r"listening on (http://\S+) pid (\d+)")


class ServerProcess:
    """One ``servers.fanout`` process on 127.0.0.1, started and watched."""

    def __init__(self, name: str, redis_url: str | None = None, mode: str = "once") -> None:
        self.name = name
        self.redis_url = redis_url
        self.mode = mode
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 20.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "servers.fanout", "--port", "0", "--mode", self.mode]
        if self.redis_url:
            cmd += ["--redis", self.redis_url]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        reaper.guard(self.proc)  # ends it if this kernel dies before stop()
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:  # keep reading so the pipe never fills and blocks the server
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip())
                del self.output[:-200]
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True, name=f"pump-{self.name}").start()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            match = _LISTENING.search(line)
            if match:
                self.url = match[1]
                _live.add(self)
                return self
        self.kill()
        raise RuntimeError(f"server {self.name} did not start: {self.output[-10:]}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def publish(self, type: str, payload: dict | None = None) -> int:
        """POST /publish; returns the event's sequence number."""
        r = requests.post(
            f"{self.url}/publish", json={"type": type, "payload": payload or {}}, timeout=10
        )
        r.raise_for_status()
        return r.json()["seq"]

    def health(self) -> tuple[int, dict[str, Any]]:
        r = requests.get(f"{self.url}/health", timeout=5)
        return r.status_code, r.json()

    def set_mode(self, mode: str) -> None:
        requests.post(f"{self.url}/mode", params={"mode": mode}, timeout=5).raise_for_status()

    def drain(self) -> int:
        """Graceful: 1001 to every client; /health then answers 503."""
        r = requests.post(f"{self.url}/drain", timeout=5)
        r.raise_for_status()
        return r.json()["closing"]

    def kill(self) -> None:
        """A crash: SIGKILL, no goodbye to the clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        _live.discard(self)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the server drains, then exits), SIGKILL if it lingers."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            if os.name == "nt":
                proc.terminate()
            else:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        _live.discard(self)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} {self.url if self.alive else 'stopped'}>"


def stop_all() -> None:
    for server in list(_live):
        server.stop()
