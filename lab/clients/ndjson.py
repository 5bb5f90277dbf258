"""The push-stream client: one request, the server writes one JSON line per event (NDJSON).

On a bad network it needs three things a plain ``requests`` loop lacks:

* **resume**: every reconnect asks for ``?after=<last seq seen>``, so the
  server replays what was missed;
* **reconnect with backoff**: full-jitter exponential delays between
  attempts (``backoff_delay``), reset once a connection succeeds;
* a **heartbeat watchdog**: with ``heartbeat_s`` the server writes a
  heartbeat line when it has been quiet that long, and with ``watchdog_s``
  the client gives a connection up when nothing at all arrived for that long
  (a NAT forgot it silently: no FIN, no RST), then reconnects.
"""

from __future__ import annotations

import random

import requests

from lab.clients.base import BackgroundClient, backoff_delay, cut_connection, timed_out
from servers.events import Event
from servers.streaming import parse_ndjson_line


class NDJSONStreamClient(BackgroundClient):
    """One request; the server pushes each event down the open response."""

    name = "push-stream"

    def __init__(
        self,
        base_url: str,
        path: str = "/stream/ndjson",
        reconnect_delay: float = 0.2,
        heartbeat_s: float | None = None,
        watchdog_s: float | None = None,
        max_delay: float = 5.0,
        **kwargs,
    ) -> None:
        super().__init__(base_url, **kwargs)
        self.path = path
        self.reconnect_delay = reconnect_delay  # the backoff's base
        self.max_delay = max_delay
        self.heartbeat_s = heartbeat_s  # ask the server for heartbeats this often
        self.watchdog_s = watchdog_s  # None: wait for bytes forever
        self.rng = random.Random()
        self.attempt = 0
        self.connections = 0
        self.heartbeats = 0
        self.watchdog_reconnects = 0
        self.notices: list[dict] = []
        self._response: requests.Response | None = None

    def _run_safely(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
            except (requests.RequestException, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                if timed_out(exc):
                    self.watchdog_reconnects += 1  # silence: presumed dead
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                self._response = None
            # The stream ended or broke: come back from the last seq we saw.
            delay = backoff_delay(self.attempt, self.reconnect_delay, self.max_delay, self.rng)
            self.attempt += 1
            self._stop.wait(delay)

    def run(self) -> None:
        self.requests_made += 1
        params = {"after": self.last_seq}
        if self.heartbeat_s:
            params["heartbeat"] = self.heartbeat_s
        with self.session.get(
            f"{self.base_url}{self.path}",
            params=params,
            stream=True,
            timeout=(5, self.watchdog_s),  # the read timeout *is* the watchdog
        ) as resp:
            resp.raise_for_status()
            self.connections += 1
            self.attempt = 0
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
                elif item.get("type") == "heartbeat":
                    self.heartbeats += 1
                else:
                    self.notices.append(item)  # e.g. a resync notice (servers.cursor)

    def drop_connection(self) -> None:
        """Cut the TCP connection, as a flaky network would. The client
        notices, backs off and reconnects from its last seq."""
        self._interrupt()

    def _interrupt(self) -> None:
        cut_connection(self._response)
