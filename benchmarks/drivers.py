"""One driver per transport: the lab's own servers and clients, behind a
counting relay.

Every driver does the same four things, so the harness can treat them alike:

* ``start()``: start the transport's server (the module notebooks 00-03
  use), a ``CountingRelay`` in front of the consumer's side, and the
  consumer (the client class those notebooks use), pointed at the relay;
  return once the consumer is connected and ready.
* ``publish(type, payload)``: the event source publishes one event
  (``ServerThread.publish``: numbered, ``sent_ns`` stamped).
* ``recorder``: the ``ArrivalRecorder`` the consumer reports arrivals to.
* ``server_cpu()``: CPU seconds used so far by the event source's server
  thread, read *on* that thread with ``time.thread_time()`` (portable:
  Linux, macOS and Windows).

No toy implementations: if a transport's server or client changes, the
harness measures the change. The server, relay and client wiring they share
with notebook 06's weather lanes is ``lab/relayed.py``.
"""

from __future__ import annotations

import time

from lab.clients import LongPollingClient, NDJSONStreamClient, ShortPollingClient
from lab.clients.sse import ReconnectingSSEClient
from lab.clients.websocket import RoomClient
from lab.relayed import Relayed
from lab.waiting import wait_until
from lab.wire.relay import CountingRelay, Counts
from servers import polling, sse, streaming, websocket

SHORT_POLL_INTERVAL_S = 0.05
LONG_POLL_WAIT_S = 1.0
READY_TIMEOUT_S = 10.0


def _ready(predicate, failure: str) -> None:
    """Wait until ``predicate()`` holds, else fail the run with ``failure``."""
    if not wait_until(predicate, READY_TIMEOUT_S, interval=0.005):
        raise RuntimeError(failure)


class Driver(Relayed):
    """A relayed transport (``lab/relayed.py``) behind a byte-counting relay."""

    notes = ""

    def make_relay(self, target_port: int, connector_is_consumer: bool = True) -> CountingRelay:
        return CountingRelay(target_port, connector_is_consumer=connector_is_consumer)

    @property
    def requests_made(self) -> int | None:
        """HTTP requests the consumer made (None: not request-based)."""
        return getattr(self.client, "requests_made", None)

    def server_cpu(self) -> float:
        assert self.server is not None
        return self.server.call(time.thread_time)

    def counts(self) -> Counts:
        assert self.relay is not None
        return self.relay.counts()

    def __enter__(self) -> Driver:
        return self.start()  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ShortPolling(Driver):
    key = "short_polling"
    label = "short polling"
    notes = f"GET /events?after=N every {SHORT_POLL_INTERVAL_S * 1000:g} ms (requests.Session)"

    def _start(self) -> None:
        url = self._serve(polling.make_app, "bench-polling").url
        self.client = ShortPollingClient(
            url, interval=SHORT_POLL_INTERVAL_S, recorder=self.recorder
        ).start()
        _ready(lambda: self.client.requests_made >= 1, "short-polling client made no request")


class LongPolling(Driver):
    key = "long_polling"
    label = "long polling"
    notes = f"GET /events/wait?after=N, held up to {LONG_POLL_WAIT_S:g} s (requests.Session)"

    def _start(self) -> None:
        url = self._serve(polling.make_app, "bench-polling").url
        self.client = LongPollingClient(url, wait=LONG_POLL_WAIT_S, recorder=self.recorder).start()
        _ready(lambda: self.client.requests_made >= 1, "long-polling client made no request")
        time.sleep(0.05)  # let the first poll reach the server and park


class Webhooks(Driver):
    key = "webhooks"
    label = "webhooks"
    notes = (
        "provider POSTs each event, signed (Standard Webhooks), via its SQLite outbox, to "
        "the receiver (verify, dedupe, answer, process); server CPU is the provider's thread"
    )

    def _start(self) -> None:
        self.serve_webhooks("bench", "bench.tick", timeout_s=5.0)

    @property
    def requests_made(self) -> int:
        assert self.receiver is not None
        return self.receiver.requests


class WebSockets(Driver):
    key = "websocket"
    label = "WebSocket"
    notes = "one ws:// connection to /ws/room (websocket-client), server frames unmasked"

    def _start(self) -> None:
        # A deeper per-client send queue than the room's default (200), so
        # the harness's bursts measure throughput, not the slow-consumer policy.
        self._serve(websocket.app_factory(send_queue=5000), "bench-websocket")
        assert self.relay is not None
        self.client = RoomClient(
            f"{self.relay.ws_url}/ws/room", token="demo", recorder=self.recorder
        ).start()
        if not self.client.wait_connected(READY_TIMEOUT_S):
            raise RuntimeError(f"WebSocket client did not connect: {self.client.errors[-1:]}")


# Driver classes share their shape (duplicates pairs NDJSON's with SSE's): each
# names its own server, client and readiness checks, so there is no code to share.
class NDJSON(Driver):
    key = "ndjson"
    label = "chunked NDJSON"
    notes = "one GET /stream/ndjson, chunked transfer encoding, one JSON line per event"

    def _start(self) -> None:
        url = self._serve(streaming.make_app, "bench-ndjson").url
        self.client = NDJSONStreamClient(url, recorder=self.recorder).start()
        _ready(
            lambda: self.client.connections >= 1,
            f"NDJSON client did not connect: {self.client.errors[-1:]}",
        )
        _ready(lambda: self.server.hub.subscriber_count >= 1, "NDJSON stream did not subscribe")


# Same shape as NDJSON above (a driver class per transport), different parts.
class SSE(Driver):
    key = "sse"
    label = "SSE"
    notes = "one GET /stream/sse (text/event-stream, chunked), read with sseclient-py"

    def _start(self) -> None:
        url = self._serve(sse.make_app, "bench-sse").url
        self.client = ReconnectingSSEClient(url, recorder=self.recorder).start()
        if not self.client.wait_connected(1, READY_TIMEOUT_S):
            raise RuntimeError(f"SSE client did not connect: {self.client.errors[-1:]}")
        _ready(lambda: self.server.hub.subscriber_count >= 1, "SSE stream did not subscribe")


DRIVERS: dict[str, type[Driver]] = {
    d.key: d for d in (ShortPolling, LongPolling, Webhooks, WebSockets, NDJSON, SSE)
}
