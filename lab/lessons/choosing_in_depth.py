"""Notebook 05 in depth, "Polling through a proxy, an outage and a token":
the feature matrix's polling cells, checked live.

``start`` serves ``servers/polling.py`` (plus any routes the notebook adds)
behind notebook 03's buffering proxy (``servers/streaming_buffering.py``,
which buffers every response that is not ``text/event-stream``) and starts a
short poller (every 50 ms) and a long poller that both go through the proxy.
``outage`` stops the proxy while events are published and starts it again on
the same port; ``away_too_long`` publishes more events than the server's log
keeps, then polls once with an old cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import requests
from tornado.web import Application

from lab.clients import LongPollingClient, PollingClient, ShortPollingClient
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from servers import polling, runtime
from servers.events import Event
from servers.runtime import ServerThread
from servers.streaming_buffering import buffering_proxy_app

THREADS = ("server-choosing-", "short-polling", "long-polling")


@dataclass
class Rig:
    origin: ServerThread  # the polling server
    proxy: ServerThread  # the buffering proxy in front of it
    pollers: list[PollingClient]  # short, long: both through the proxy

    def publish(self, n: int, note: str) -> list[Event]:
        return [self.origin.publish("reading", {"note": note, "i": i}) for i in range(n)]

    def caught_up(self, seq: int, timeout: float = 10.0) -> bool:
        return wait_until(lambda: all(p.recorder.highest_seq >= seq for p in self.pollers),
                          timeout)  # fmt: skip

    def proxy_mode(self) -> str:
        """What the proxy says it did with a poll's answer (``X-Proxy-Mode``)."""
        answer = requests.get(f"{self.proxy.url}/events", params={"after": 0}, timeout=5)
        return answer.headers.get("X-Proxy-Mode", "")

    def status(self, path: str, token: str | None = None) -> int:
        """The status of one poll of ``path`` on the server itself, with a bearer token or none."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.origin.url}{path}"
        return requests.get(url, params={"after": 0}, headers=headers, timeout=5).status_code

    def summary(self) -> dict[str, str]:
        return {
            p.name: f"{p.recorder.unique} events, missing {p.recorder.missing()}, "
            f"{len(p.errors)} failed request(s)"
            for p in self.pollers
        }

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()


def start(extra_routes: Callable[[object], list] = lambda hub: []) -> Rig:
    """A fresh polling server (its routes plus ``extra_routes(hub)``), the
    buffering proxy in front of it, and both pollers started through it."""
    origin = runtime.start(
        "choosing-origin", lambda hub: Application(polling.routes(hub) + extra_routes(hub), hub=hub)
    )
    proxy = runtime.start("choosing-proxy", buffering_proxy_app(origin.url))
    pollers: list[PollingClient] = [
        ShortPollingClient(proxy.url, interval=0.05, recorder=ArrivalRecorder("short polling")),
        LongPollingClient(proxy.url, wait=0.5, recorder=ArrivalRecorder("long polling")),
    ]
    for poller in pollers:
        poller.start()
    return Rig(origin, proxy, pollers)


def outage(rig: Rig, events: int = 5) -> list[Event]:
    """Stop the proxy (the network between consumer and server is gone),
    publish ``events`` while both pollers fail, start the proxy again on the
    same port and wait until both have caught up. Returns what was published."""
    failed = [len(p.errors) for p in rig.pollers]
    access = logging.getLogger("tornado.access")
    level = access.level
    # Stopping the proxy cancels a long poll it was forwarding; Tornado logs
    # that cancelled request as a 500 nobody receives. Keep it off the page.
    access.setLevel(logging.CRITICAL)
    try:
        rig.proxy.stop()
    finally:
        access.setLevel(level)
    away = rig.publish(events, "while the proxy was down")
    wait_until(lambda: all(len(p.errors) > n for p, n in zip(rig.pollers, failed, strict=True)), 5)
    rig.proxy.start()
    if not rig.caught_up(away[-1].seq):
        raise RuntimeError("the pollers did not catch up within 10 s of the proxy's restart")
    return away


def away_too_long(rig: Rig) -> dict:
    """Stop the pollers, publish one event more than the server's log keeps,
    then poll once (through the proxy) with the short poller's old cursor.
    Returns the answer's JSON: its ``resync`` notice names what is gone."""
    rig.stop()
    cursor = rig.pollers[0].last_seq
    rig.publish(rig.origin.hub.log.capacity + 1, "while the consumer was away")
    answer = requests.get(f"{rig.proxy.url}/events", params={"after": cursor}, timeout=10)
    answer.raise_for_status()
    return answer.json()
