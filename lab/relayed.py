"""One transport, relayed: its server, a relay in front, its client, a recorder.

The common part of the benchmark drivers (``benchmarks/drivers.py``, behind
a ``CountingRelay`` that counts bytes) and the network-weather lanes
(``lab/weather/lanes.py``, behind a ``WeatherRelay`` with the learner's
dials). A subclass says which relay (``make_relay``) and which server and
client (``_start``); the webhook pair, where the consumer is a server the
provider calls, is ``serve_webhooks``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lab.clients.base import stop_quietly
from lab.provider_handle import ProviderHandle
from lab.recorder import ArrivalRecorder
from servers.runtime import ServerThread
from servers.webhooks import signing
from servers.webhooks.provider import provider_app
from servers.webhooks.receiver import Receiver


class Relayed:
    """A server (the event source), a relay, a client (the consumer), a recorder."""

    key = ""
    label = ""

    def __init__(self) -> None:
        self.recorder = ArrivalRecorder(self.key)
        self.server: ServerThread | None = None
        self.relay: Any = None
        self.client: Any = None
        self.receiver: Receiver | None = None  # webhooks only: the consumer
        self.receiver_server: ServerThread | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    # -- what a subclass fills in ---------------------------------------------------
    def make_relay(self, target_port: int, connector_is_consumer: bool = True) -> Any:
        """The relay in front of ``target_port`` (``connector_is_consumer``:
        False when the side that connects is the event source, as for webhooks)."""
        raise NotImplementedError

    def _start(self) -> None:
        raise NotImplementedError

    # -- common -----------------------------------------------------------------------
    def _serve(self, factory: Any, name: str) -> Any:
        """Start the event source's server and a relay in front of it; the
        relay is where the consumer connects."""
        self.server = ServerThread(factory, name=name).start()
        self.relay = self.make_relay(self.server.port)
        return self.relay

    def serve_webhooks(self, name: str, event_type: str, **provider_options: Any) -> None:
        """A receiver (the consumer, reporting to ``recorder``), a relay in
        front of it, and a provider (``server``, the event source, with a
        fresh outbox file) subscribed to ``event_type`` through the relay."""
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{name}-webhooks-")
        secret = signing.generate_secret()
        self.receiver = Receiver(secret, recorder=self.recorder)
        factory = self.receiver.app_factory()
        self.receiver_server = ServerThread(factory, name=f"{name}-receiver").start()
        # The provider is the one that connects: what it sends goes to the consumer.
        self.relay = self.make_relay(self.receiver_server.port, connector_is_consumer=False)
        outbox = Path(self._tmp.name) / "outbox.sqlite"
        self.server = ServerThread(
            provider_app(outbox, allow_loopback=True, **provider_options), name=f"{name}-provider"
        ).start()
        ProviderHandle(self.server).subscribe(f"{self.relay.url}/webhook", [event_type], secret)

    def start(self) -> Relayed:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def publish(self, type: str, payload: dict) -> Any:
        assert self.server is not None
        return self.server.publish(type, payload)

    def stop(self) -> None:
        stop_quietly(self.client, self.relay, self.server, self.receiver_server)
        if self._tmp is not None:
            self._tmp.cleanup()
