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
harness measures the change.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from lab.clients import LongPollingClient, NDJSONStreamClient, ShortPollingClient
from lab.clients.base import stop_quietly
from lab.clients.sse import ReconnectingSSEClient
from lab.clients.websocket import RoomClient
from lab.provider_handle import ProviderHandle
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from lab.wire.relay import CountingRelay, Counts
from servers import polling, sse, streaming, websocket
from servers.runtime import ServerThread
from servers.webhooks import signing
from servers.webhooks.provider import provider_app
from servers.webhooks.receiver import Receiver

SHORT_POLL_INTERVAL_S = 0.05
LONG_POLL_WAIT_S = 1.0
READY_TIMEOUT_S = 10.0


def _ready(predicate, failure: str) -> None:
    """Wait until ``predicate()`` holds, else fail the run with ``failure``."""
    if not wait_until(predicate, READY_TIMEOUT_S, interval=0.005):
        raise RuntimeError(failure)


class Driver:
    """The common part: a server, a relay, a client, a recorder."""

    key = ""
    label = ""
    notes = ""

    def __init__(self) -> None:
        self.recorder = ArrivalRecorder(self.key)
        self.server: ServerThread | None = None
        self.relay: CountingRelay | None = None
        self.client: Any = None

    # -- subclasses fill these in -------------------------------------------
    def _start(self) -> None:
        raise NotImplementedError

    @property
    def requests_made(self) -> int | None:
        """HTTP requests the consumer made (None: not request-based)."""
        return getattr(self.client, "requests_made", None)

    # -- common ---------------------------------------------------------------
    def _serve(self, factory: Any, name: str) -> str:
        """Start the event source's server and a relay in front of it; the
        relay's URL is where the consumer connects."""
        self.server = ServerThread(factory, name=name).start()
        self.relay = CountingRelay(self.server.port)
        return self.relay.url

    def start(self) -> Driver:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def publish(self, type: str, payload: dict) -> Any:
        assert self.server is not None
        return self.server.publish(type, payload)

    def server_cpu(self) -> float:
        assert self.server is not None
        return self.server.call(time.thread_time)

    def counts(self) -> Counts:
        assert self.relay is not None
        return self.relay.counts()

    def stop(self) -> None:
        stop_quietly(self.client, self.relay, self.server)

    def __enter__(self) -> Driver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ShortPolling(Driver):
    key = "short_polling"
    label = "short polling"
    notes = f"GET /events?after=N every {SHORT_POLL_INTERVAL_S * 1000:g} ms (requests.Session)"

    def _start(self) -> None:
        url = self._serve(polling.make_app, "bench-polling")
        self.client = ShortPollingClient(
            url, interval=SHORT_POLL_INTERVAL_S, recorder=self.recorder
        ).start()
        _ready(lambda: self.client.requests_made >= 1, "short-polling client made no request")


class LongPolling(Driver):
    key = "long_polling"
    label = "long polling"
    notes = f"GET /events/wait?after=N, held up to {LONG_POLL_WAIT_S:g} s (requests.Session)"

    def _start(self) -> None:
        url = self._serve(polling.make_app, "bench-polling")
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
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-webhooks-")
        secret = signing.generate_secret()
        self.receiver = Receiver(secret, recorder=self.recorder)
        self.receiver_server = ServerThread(
            self.receiver.app_factory(), name="bench-receiver"
        ).start()
        # The provider is the one that connects: bytes it sends go to the consumer.
        self.relay = CountingRelay(self.receiver_server.port, connector_is_consumer=False)
        self.server = ServerThread(
            provider_app(
                Path(self._tmp.name) / "outbox.sqlite", allow_loopback=True, timeout_s=5.0
            ),
            name="bench-provider",
        ).start()
        ProviderHandle(self.server).subscribe(f"{self.relay.url}/webhook", ["bench.tick"], secret)

    @property
    def requests_made(self) -> int:
        return self.receiver.requests

    def stop(self) -> None:
        super().stop()
        server = getattr(self, "receiver_server", None)
        if server is not None:
            server.stop()
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            tmp.cleanup()


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
        url = self._serve(streaming.make_app, "bench-ndjson")
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
        url = self._serve(sse.make_app, "bench-sse")
        self.client = ReconnectingSSEClient(url, recorder=self.recorder).start()
        if not self.client.wait_connected(1, READY_TIMEOUT_S):
            raise RuntimeError(f"SSE client did not connect: {self.client.errors[-1:]}")
        _ready(lambda: self.server.hub.subscriber_count >= 1, "SSE stream did not subscribe")


DRIVERS: dict[str, type[Driver]] = {
    d.key: d for d in (ShortPolling, LongPolling, Webhooks, WebSockets, NDJSON, SSE)
}
