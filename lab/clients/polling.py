"""Polling clients: short polling asks on a timer, long polling lets the server hold the answer.

Every request has a timeout (``timeout``; for long polling the hold plus
``slack``): on a network that loses an answer silently (a NAT that forgot
the connection) the request fails after that long and the next one resumes
from the last ``seq`` seen, so nothing is lost. A long poll's hold is also
its heartbeat: shorter than a NAT's idle timeout, the connection never idles
out.
"""

from __future__ import annotations

from lab.clients.base import BackgroundClient
from servers.events import Event


class PollingClient(BackgroundClient):
    """What both polling clients do: ask for the events after the last seq seen."""

    def poll(self, path: str, timeout: float, params: dict | None = None) -> None:
        """One request: ``GET path?after=<last seq>`` (plus ``params``), deliver what came."""
        self.requests_made += 1
        resp = self.session.get(
            f"{self.base_url}{path}",
            params={"after": self.last_seq, **(params or {})},
            timeout=timeout,
        )
        resp.raise_for_status()
        for item in resp.json()["events"]:
            self.deliver(Event.from_dict(item))


# Short and long polling share a skeleton (duplicates pairs them by shape); the
# request itself is one method, PollingClient.poll.
class ShortPollingClient(PollingClient):
    """Ask "anything new?" every ``interval`` seconds, news or not."""

    name = "short-polling"

    def __init__(
        self, base_url: str, interval: float = 1.0, timeout: float = 5.0, **kwargs
    ) -> None:
        super().__init__(base_url, **kwargs)
        self.interval = interval
        self.timeout = timeout  # seconds before an unanswered request is given up

    def run(self) -> None:
        while not self._stop.is_set():
            self.poll("/events", timeout=self.timeout)
            self._stop.wait(self.interval)


# Same skeleton as ShortPollingClient: only the loop differs (see PollingClient.poll).
class LongPollingClient(PollingClient):
    """Ask "anything new?" and let the server hold the answer until there is."""

    name = "long-polling"

    def __init__(
        self,
        base_url: str,
        wait: float = 1.0,
        path: str = "/events/wait",
        slack: float = 5.0,
        **kwargs,
    ) -> None:
        super().__init__(base_url, **kwargs)
        # Short server-side waits so stop() is never stuck behind a pending poll.
        self.wait = wait
        # Another handler to poll: notebook 00 points one at the handler it builds.
        self.path = path
        self.slack = slack  # how much longer than the hold we wait for an answer

    def run(self) -> None:
        while not self._stop.is_set():
            # The server holds the request up to ``wait`` s; ours waits longer.
            self.poll(self.path, timeout=self.wait + self.slack, params={"timeout": self.wait})
