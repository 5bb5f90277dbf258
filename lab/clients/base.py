"""What every kernel-side client shares: a loop in a background thread.

Each client is an ordinary blocking loop (``requests``, websocket-client),
started in a daemon thread so the notebook cell returns at once and the
widgets keep updating. Every event that arrives goes to an
``ArrivalRecorder``. A subclass writes ``run()`` (one connection, or one
polling loop); ``_run_safely`` runs it again after an error, and
``_interrupt`` unblocks it when ``stop()`` is called.

``requests_made`` counts HTTP requests: the number notebook 00 divides by the
events delivered to show what polling costs.
"""

from __future__ import annotations

import random
import socket
import threading

import requests

from lab.recorder import ArrivalRecorder
from servers.events import Event


class BackgroundClient:
    """A client loop in a daemon thread with a clean ``stop()``."""

    name = "client"

    def __init__(self, base_url: str, recorder: ArrivalRecorder | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.recorder = recorder or ArrivalRecorder(self.name)
        self.requests_made = 0
        self.last_seq = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.session = requests.Session()

    def start(self) -> BackgroundClient:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_safely, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not stop within {timeout} s")
            self._thread = None
        self.session.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> BackgroundClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def deliver(self, event: Event) -> None:
        self.last_seq = max(self.last_seq, event.seq)
        self.recorder.record(event)

    # -- subclasses ----------------------------------------------------------
    def run(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Unblock a call the loop may be blocked in (default: nothing to do)."""

    def _run_safely(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
            except (requests.RequestException, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                # The server went away or answered garbage: note it, back off
                # a little and try again, as a real client would.
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(0.2)


def backoff_delay(attempt: int, base: float = 0.1, cap: float = 5.0, rng=random) -> float:
    """Full-jitter exponential backoff: a random delay in [0, min(cap, base*2^attempt)]."""
    return rng.uniform(0, min(cap, base * 2**attempt))


def timed_out(exc: BaseException) -> bool:
    """True for a read timeout: nothing arrived for the watchdog's interval."""
    return isinstance(exc, requests.exceptions.ReadTimeout) or "timed out" in str(exc)


def stop_quietly(*parts: object) -> None:
    """Stop clients, relays and servers in order (``stop()``, else ``close()``),
    skipping ``None``. A client thread that will not stop is a daemon and dies
    with the process, so its ``RuntimeError`` does not keep the rest running."""
    for part in parts:
        if part is None:
            continue
        try:
            part.stop() if hasattr(part, "stop") else part.close()
        except RuntimeError:
            pass


def cut_connection(resp: requests.Response | None) -> None:
    """Shut down the socket under a streaming response, from any thread.

    A thread blocked in recv() is not woken by close() on every OS; shutting
    the socket down is. The blocked read then returns and the client's loop
    notices the connection is gone."""
    if resp is None:
        return
    sock = _socket_of(resp)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _socket_of(resp: requests.Response) -> socket.socket | None:
    # No public requests API exposes the socket under a streaming response.
    # urllib3 2.x has the public HTTPResponse.connection; urllib3 1.26 (which
    # requests>=2.31 still allows) only the private _connection, hence the
    # fallback. tests/test_lab_layout.py fails if urllib3 drops the public one.
    connection = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    return getattr(connection, "sock", None)
