"""The push-stream client: one request, the server writes one JSON line per event (NDJSON)."""

from __future__ import annotations

import requests

from lab.clients.base import BackgroundClient, cut_connection
from servers.events import Event
from servers.streaming import parse_ndjson_line


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
