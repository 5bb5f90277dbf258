"""One lane per transport: its server, a weather relay in front, its client.

The same six transports as notebook 05's harness (``benchmarks/drivers.py``),
with the lab's own servers and clients, but every client goes through a
``WeatherRelay`` and is set up for a bad network: request timeouts for the
pollers, heartbeats and watchdogs for the streams (``heartbeat_s``; None:
none), reconnect with backoff and resume for all. Webhooks: the relay sits
between the provider and the receiver (the receiver is the consumer).

The wiring (server, relay, client, the webhook pair) is ``lab/relayed.py``,
shared with the benchmark drivers. All relays share one ``Weather``, so
turning a dial changes every lane at once. Times are the demo's compressed
ones (``presets.DEMO_FACTOR``).
"""

from __future__ import annotations

from typing import Any

from lab.clients import LongPollingClient, NDJSONStreamClient, ShortPollingClient
from lab.clients.sse import ReconnectingSSEClient
from lab.clients.websocket import RoomClient
from lab.provider_handle import ProviderHandle
from lab.relayed import Relayed
from lab.waiting import wait_until
from servers import polling, sse, streaming, websocket

from .relay import Weather, WeatherRelay

SHORT_POLL_S = 0.1  # 3 s real
LONG_POLL_HOLD_S = 0.5  # 15 s real: shorter than the NAT's 30 s
REQUEST_SLACK_S = 1.0  # a poll unanswered this long after its hold is given up
WATCHDOG_FACTOR = 2.5  # a stream is presumed dead after 2.5 heartbeat intervals of silence
EVENT_TYPE = "weather.tick"


class Lane(Relayed):
    """A relayed transport (``lab/relayed.py``) behind a weather relay."""

    def __init__(self, weather: Weather, heartbeat_s: float | None) -> None:
        self.weather = weather
        self.heartbeat_s = heartbeat_s
        super().__init__()

    def make_relay(self, target_port: int, connector_is_consumer: bool = True) -> WeatherRelay:
        return WeatherRelay(target_port, self.weather)  # the weather hits both directions

    def ready(self) -> bool:
        return True

    def publish(self, type: str = EVENT_TYPE, payload: dict | None = None) -> Any:
        return super().publish(type, {"lane": self.key} if payload is None else payload)

    def watchdog_s(self) -> float | None:
        return self.heartbeat_s * WATCHDOG_FACTOR if self.heartbeat_s else None

    def set_heartbeat(self, heartbeat_s: float | None) -> None:
        """Heartbeats on (an interval) or off (None); streams reconnect to apply it."""
        self.heartbeat_s = heartbeat_s

    def arrived_twice(self) -> int:
        return self.recorder.duplicates

    def reconnects(self) -> int:
        return getattr(self.client, "watchdog_reconnects", 0)

    def retries(self) -> int:
        """Requests or connections that failed and were made again."""
        return len(getattr(self.client, "errors", ()))

    def heartbeats(self) -> int:
        """Heartbeats heard so far (WebSocket: pings sent, each answered by a pong)."""
        client = self.client
        for name in ("live_heartbeats", "heartbeats", "pings_sent"):
            if hasattr(client, name):
                return getattr(client, name)
        return 0


class ShortPolling(Lane):
    key, label = "short_polling", "short polling"

    def _start(self) -> None:
        url = self._serve(polling.make_app, f"weather-{self.key}").url
        self.client = ShortPollingClient(
            url, interval=SHORT_POLL_S, timeout=REQUEST_SLACK_S, recorder=self.recorder
        ).start()


class LongPolling(Lane):
    key, label = "long_polling", "long polling"

    def _start(self) -> None:
        url = self._serve(polling.make_app, f"weather-{self.key}").url
        self.client = LongPollingClient(
            url, wait=LONG_POLL_HOLD_S, slack=REQUEST_SLACK_S, recorder=self.recorder
        ).start()


class Webhooks(Lane):
    key, label = "webhooks", "webhooks"

    def _start(self) -> None:
        self.serve_webhooks("weather", EVENT_TYPE)

    def arrived_twice(self) -> int:
        return self.receiver.duplicates_absorbed  # redeliveries the inbox absorbed

    def retries(self) -> int:
        """Delivery attempts that failed (the provider tries each again)."""
        return sum(a["outcome"] == "retry" for a in ProviderHandle(self.server).attempts())

    def undelivered(self, settle_s: float = 0.0) -> int:
        """Messages not yet delivered, or given up (the outbox's pending and dead).

        With ``settle_s``, first wait (at most that long) until the provider has
        nothing pending or in flight: an attempt whose answer a flap cut may have
        reached the receiver already, and stays pending until its retry gets the 2xx."""
        provider = ProviderHandle(self.server)
        if settle_s:
            provider.wait_idle(timeout=settle_s)
        status = provider.status()
        return status["pending"] + status["in_flight"] + status["dead"]

    def reconnects(self) -> int:
        return 0


class WebSockets(Lane):
    key, label = "websocket", "WebSocket"

    def _start(self) -> None:
        relay = self._serve(websocket.app_factory(send_queue=5000), "weather-websocket")
        self.client = RoomClient(
            f"{relay.ws_url}/ws/room",
            recorder=self.recorder,
            ping_interval=self.heartbeat_s,
            max_delay=1.0,
        ).start()

    def ready(self) -> bool:
        return self.client.connected and self.client.last_seq is not None

    def set_heartbeat(self, heartbeat_s: float | None) -> None:
        super().set_heartbeat(heartbeat_s)
        self.client.ping_interval = heartbeat_s
        self.client.drop_connection()


class NDJSON(Lane):
    key, label = "ndjson", "NDJSON"

    def _start(self) -> None:
        url = self._serve(streaming.make_app, f"weather-{self.key}").url
        self.client = NDJSONStreamClient(
            url,
            heartbeat_s=self.heartbeat_s,
            watchdog_s=self.watchdog_s(),
            reconnect_delay=0.05,
            max_delay=1.0,
            recorder=self.recorder,
        ).start()

    def ready(self) -> bool:
        return self.server is not None and self.server.hub.subscriber_count >= 1

    def set_heartbeat(self, heartbeat_s: float | None) -> None:
        super().set_heartbeat(heartbeat_s)
        self.client.heartbeat_s, self.client.watchdog_s = heartbeat_s, self.watchdog_s()
        self.client.drop_connection()


class SSE(Lane):
    key, label = "sse", "SSE"

    def _start(self) -> None:
        url = self._serve(sse.make_app, f"weather-{self.key}").url
        self.server.state.retry_ms = 100  # the reconnection delay the server announces
        self.client = ReconnectingSSEClient(
            url,
            last_event_id=0,
            retry_ms=100,
            watchdog_s=self.watchdog_s(),
            params={"heartbeat": self.heartbeat_s or 0},
            recorder=self.recorder,
        ).start()

    def ready(self) -> bool:
        return self.server is not None and self.server.hub.subscriber_count >= 1

    def set_heartbeat(self, heartbeat_s: float | None) -> None:
        super().set_heartbeat(heartbeat_s)
        self.client.params["heartbeat"] = heartbeat_s or 0
        self.client.watchdog_s = self.watchdog_s()
        self.client.drop_connection()


LANES: dict[str, type[Lane]] = {
    lane.key: lane for lane in (ShortPolling, LongPolling, Webhooks, WebSockets, NDJSON, SSE)
}


def start_all(weather: Weather, heartbeat_s: float | None, timeout: float = 10.0) -> dict:
    """Every lane started (in the harness's order) and ready, or RuntimeError."""
    lanes: dict[str, Lane] = {}
    try:
        for key, cls in LANES.items():
            lanes[key] = cls(weather, heartbeat_s).start()
        for lane in lanes.values():
            if not wait_until(lane.ready, timeout, interval=0.01):
                raise RuntimeError(f"{lane.label} did not get ready")
    except BaseException:
        for lane in lanes.values():
            lane.stop()
        raise
    return lanes
