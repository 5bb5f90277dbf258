"""Kernel-side clients that run in a background thread and record arrivals.

Each client here is an ordinary blocking ``requests`` loop, started in a
daemon thread so the notebook cell returns at once and the widgets keep
updating. Every event that arrives goes to an ``ArrivalRecorder``.

``requests_made`` counts HTTP requests: the number notebook 00 divides by the
events delivered to show what polling costs.
"""

from __future__ import annotations

import socket
import threading
import time

import requests

from servers.events import Event
from servers.streaming import parse_ndjson_line

from .recorder import ArrivalRecorder


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


class ShortPollingClient(BackgroundClient):
    """Ask "anything new?" every ``interval`` seconds, news or not."""

    name = "short-polling"

    def __init__(self, base_url: str, interval: float = 1.0, **kwargs) -> None:
        super().__init__(base_url, **kwargs)
        self.interval = interval

    def run(self) -> None:
        while not self._stop.is_set():
            self.requests_made += 1
            resp = self.session.get(
                f"{self.base_url}/events", params={"after": self.last_seq}, timeout=5
            )
            resp.raise_for_status()
            for item in resp.json()["events"]:
                self.deliver(Event.from_dict(item))
            self._stop.wait(self.interval)


class LongPollingClient(BackgroundClient):
    """Ask "anything new?" and let the server hold the answer until there is."""

    name = "long-polling"

    def __init__(self, base_url: str, wait: float = 1.0, **kwargs) -> None:
        super().__init__(base_url, **kwargs)
        # Short server-side waits so stop() is never stuck behind a pending poll.
        self.wait = wait

    def run(self) -> None:
        while not self._stop.is_set():
            self.requests_made += 1
            resp = self.session.get(
                f"{self.base_url}/events/wait",
                params={"after": self.last_seq, "timeout": self.wait},
                timeout=self.wait + 5,
            )
            resp.raise_for_status()
            for item in resp.json()["events"]:
                self.deliver(Event.from_dict(item))


class NDJSONStreamClient(BackgroundClient):
    """One request; the server pushes each event down the open response."""

    name = "push-stream"

    def __init__(
        self, base_url: str, path: str = "/stream/ndjson", reconnect_delay: float = 0.2, **kwargs
    ) -> None:
        super().__init__(base_url, **kwargs)
        self.path = path
        self.reconnect_delay = reconnect_delay
        self.connections = 0
        self.notices: list[dict] = []
        self._response: requests.Response | None = None

    def run(self) -> None:
        self.requests_made += 1
        with self.session.get(
            f"{self.base_url}{self.path}",
            params={"after": self.last_seq},
            stream=True,
            timeout=(5, None),
        ) as resp:
            resp.raise_for_status()
            self.connections += 1
            self._response = resp
            # iter_lines is safe for NDJSON (one JSON value per "\n"-ended
            # line). Never use it for SSE: see servers/streaming.py.
            for line in resp.iter_lines(chunk_size=None):
                if self._stop.is_set():
                    return
                if not line:
                    continue
                item = parse_ndjson_line(line)
                if isinstance(item, Event):
                    self.deliver(item)
                else:
                    self.notices.append(item)  # e.g. a resync notice (servers.cursor)
        self._response = None
        # The server ended the stream (stopped, or told us to resync): come
        # back from the last seq we saw, after a short pause.
        self._stop.wait(self.reconnect_delay)

    def drop_connection(self) -> None:
        """Cut the TCP connection, as a flaky network would. The client
        notices, waits ``reconnect_delay`` and reconnects from its last seq."""
        self._interrupt()

    def _interrupt(self) -> None:
        cut_connection(self._response)


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
    connection = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    return getattr(connection, "sock", None)


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
