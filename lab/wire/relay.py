"""Bytes on the wire, counted at the socket: a tiny counting TCP relay.

The harness puts this relay between a client and a server, both on
127.0.0.1: the client connects to the relay, the relay connects to the
server, and every byte either side writes passes through ``recv``/``sendall``
here, where it is counted. So the counts are the real bytes on the wire
(request lines, headers, chunk sizes, WebSocket frame headers, SSE field
names, TCP-level retransmissions excepted), not an estimate from payload
sizes. TLS is not used in the harness, so there is nothing hidden.

Directions are named by *role*, not by who connected: ``to_consumer`` is
what the event source sent towards the consumer, ``from_consumer`` the
consumer's requests, acknowledgements and handshakes. For webhooks the
provider (the event source) is the one that connects, so the relay is told
``connector_is_consumer=False``.

One thread runs a selector loop for every connection: no thread per
connection, and the added latency is one extra loopback hop for every
transport alike (the harness says so in its results).

The same relay serves notebook 02's wire lessons: ``keep`` bytes of each
direction are captured for a frame-by-frame view (``captured["up"]`` is
what the connecting side sent, ``captured["down"]`` what came back),
``snapshot()`` gives the raw counts by direction and the number of socket
reads (a proxy for radio wake-ups), and ``reset()`` starts counting afresh.
"""

from __future__ import annotations

import selectors
import socket
import threading
from dataclasses import dataclass

HOST = "127.0.0.1"


@dataclass
class Counts:
    """A snapshot of the relay's counters."""

    to_consumer: int = 0
    from_consumer: int = 0
    connections: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.to_consumer - other.to_consumer,
            self.from_consumer - other.from_consumer,
            self.connections - other.connections,
        )


class CountingRelay:
    """Listen on 127.0.0.1:<port>, forward to ``target_port``, count bytes.

    ``relay.port`` is where the client should connect; ``relay.counts()``
    returns a consistent snapshot; ``relay.close()`` stops it and closes
    every socket. Use as a context manager.
    """

    def __init__(self, target_port: int, connector_is_consumer: bool = True, keep: int = 0) -> None:
        self.target = (HOST, target_port)
        self.connector_is_consumer = connector_is_consumer
        self.keep = keep  # bytes of each direction kept in ``captured``
        self._lock = threading.Lock()
        self._up = 0  # bytes from the connecting side towards the target
        self._down = 0  # bytes from the target back to the connecting side
        self._reads = {"up": 0, "down": 0}
        self.captured = {"up": bytearray(), "down": bytearray()}
        self._connections = 0
        self._listener = socket.create_server((HOST, 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        # A socket pair wakes the selector when close() is called.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._peers: dict[socket.socket, tuple[socket.socket, bool]] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="counting-relay", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def counts(self) -> Counts:
        with self._lock:
            if self.connector_is_consumer:
                return Counts(self._down, self._up, self._connections)
            return Counts(self._up, self._down, self._connections)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def snapshot(self) -> dict[str, int]:
        """Bytes and socket reads by direction: ``up`` from the connecting side."""
        with self._lock:
            return {
                "up": self._up,
                "down": self._down,
                "reads_up": self._reads["up"],
                "reads_down": self._reads["down"],
            }

    def reset(self) -> None:
        """Count (and capture) afresh from now on; connections are not reset."""
        with self._lock:
            self._up = self._down = 0
            self._reads = {"up": 0, "down": 0}
            self.captured = {"up": bytearray(), "down": bytearray()}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(2.0)

    def __enter__(self) -> CountingRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the relay thread -----------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._closed:
                for key, _ in self._selector.select(timeout=0.5):
                    if key.data == "wake":
                        break
                    if key.data is None:
                        self._accept()
                    else:
                        self._pump(key.fileobj)
        finally:
            for sock in list(self._peers):
                sock.close()
            self._peers.clear()
            self._selector.close()
            self._listener.close()
            self._wake_r.close()
            self._wake_w.close()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()  # the server is down: the client sees a reset, as it would
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
        # A blocking sendall on a non-blocking socket could raise; the
        # forwarding below switches to blocking sends with a timeout instead.
        self._peers[client] = (upstream, True)  # bytes read here go "up"
        self._peers[upstream] = (client, False)
        self._selector.register(client, selectors.EVENT_READ, "peer")
        self._selector.register(upstream, selectors.EVENT_READ, "peer")
        with self._lock:
            self._connections += 1

    def _pump(self, sock: socket.socket) -> None:
        pair = self._peers.get(sock)
        if pair is None:
            return
        other, upward = pair
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock, other)
            return
        direction = "up" if upward else "down"
        # Count before forwarding, so whoever reads the counters after the
        # peer got the bytes sees them counted.
        with self._lock:
            if upward:
                self._up += len(data)
            else:
                self._down += len(data)
            self._reads[direction] += 1
            room = self.keep - len(self.captured[direction])
            if room > 0:
                self.captured[direction] += data[:room]
        try:
            other.settimeout(5)
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self._drop(sock, other)

    def _drop(self, sock: socket.socket, other: socket.socket) -> None:
        for s in (sock, other):
            self._peers.pop(s, None)
            try:
                self._selector.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
