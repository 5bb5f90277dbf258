"""Fan-out server *processes* (``python -m servers.fanout``) for scale-out.

Each ``ServerProcess`` is a separate Python process with its own connections,
its own event loop and its own log, like a real deployment's replicas. The
notebook starts two, optionally pointed at a Redis backplane, and kills or
drains one to show failover.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import requests

from . import process

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on (http://\S+) pid (\d+)")


class ServerProcess(process.ManagedProcess):
    """One ``servers.fanout`` process on 127.0.0.1, started and watched.

    ``stop()`` is graceful (``terminate()``: SIGTERM on POSIX, which the server
    answers by draining; Windows ends it at once), ``kill()`` a crash."""

    what = "server"
    owns_output = False  # a pump thread reads it (see start)

    def __init__(self, name: str, redis_url: str | None = None, mode: str = "once") -> None:
        self.name = name
        self.redis_url = redis_url
        self.mode = mode
        self.url: str | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 20.0) -> ServerProcess:
        cmd = [sys.executable, "-m", "servers.fanout", "--port", "0", "--mode", self.mode]
        if self.redis_url:
            cmd += ["--redis", self.redis_url]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        proc = self._spawn(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

        def pump() -> None:  # keep reading so the pipe never fills and blocks the server
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line.rstrip())
                del self.output[:-200]
                match = _LISTENING.search(line)
                if match and self.url is None:
                    self.url = match[1]

        threading.Thread(target=pump, daemon=True, name=f"pump-{self.name}").start()
        self._wait_ready(lambda: self.url is not None, timeout, interval=0.01)
        return self

    def _output(self) -> str:
        return "\n".join(self.output[-10:])

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

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} {self.url if self.alive else 'stopped'}>"


def stop_all() -> None:
    process.stop_all(ServerProcess)
