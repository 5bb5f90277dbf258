"""A WebSocket room client in a background thread that never loses its place.

``RoomClient`` wraps websocket-client's blocking ``create_connection`` in a
thread loop:

* every event (a message with ``seq``) goes to an ``ArrivalRecorder``;
* it remembers the last ``seq`` it saw and reconnects with ``?after=<seq>``,
  so the server replays what it missed (the server says ``resync`` when
  its log no longer holds some of it: that lands in ``notices``);
* between attempts it waits an exponential backoff with full jitter
  (``uniform(0, min(cap, base * 2**attempt))``), so a thousand clients cut
  off by the same server restart do not all come back in the same
  millisecond; a successful connection resets the attempt counter.

Control messages (``room.welcome``, ``room.error``...) go to ``notices``.

With ``ping_interval`` it also keeps a **ping/pong watchdog**: when nothing
arrived for that long it sends a ping (RFC 6455 5.5.2); when nothing, not
even the pong, arrives for another interval, the connection is presumed
dead (a NAT forgot it silently) and replaced. The ping also keeps a NAT's
idle timer from running out, as long as the interval is shorter than it.
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlencode

import websocket  # websocket-client

from lab.clients.base import BackgroundClient, backoff_delay  # noqa: F401 (export)
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from servers.events import Event


class RoomClient(BackgroundClient):
    """Join the room at ``url`` (``ws://.../ws/room``) and stay joined.

    The thread, ``start``/``stop`` and the context manager come from
    ``BackgroundClient``; what is the room's own: one ``run()`` is one
    WebSocket session, and between sessions it waits a jittered backoff
    (``_run_safely``) instead of the base's fixed pause."""

    def __init__(
        self,
        url: str,
        token: str = "demo",
        recorder: ArrivalRecorder | None = None,
        name: str = "ws-client",
        origin: str | None = None,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sslopt: dict[str, Any] | None = None,
        last_seq: int | None = None,
        rng: random.Random | None = None,
        ping_interval: float | None = None,
    ) -> None:
        self.name = name  # before the base makes a recorder named after it
        super().__init__(url, recorder=recorder)
        self.url = url
        self.token = token
        self.origin = origin
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sslopt = sslopt
        # None: join live (no replay); a number: replay everything after it.
        self.last_seq = last_seq
        self.rng = rng or random.Random()
        self.ping_interval = ping_interval  # None: no watchdog (read until the OS says)
        self.pings_sent = 0
        self.watchdog_reconnects = 0
        self.connections = 0
        self.attempt = 0
        self.delays: list[float] = []  # every backoff wait, for a plot
        self.notices: list[dict] = []
        self.close_codes: list[int | None] = []
        self._ws: websocket.WebSocket | None = None
        self._send_lock = threading.Lock()

    @property
    def connected(self) -> bool:
        ws = self._ws
        return ws is not None and ws.connected

    # -- what a notebook calls ---------------------------------------------------
    def say(self, text: str, **extra: Any) -> None:
        """Send a chat line (raises if not connected right now)."""
        self.send({"type": "say", "text": text, **extra})

    def send(self, message: dict | str) -> None:
        ws = self._ws
        if ws is None or not ws.connected:
            raise ConnectionError(f"{self.name} is not connected")
        data = message if isinstance(message, str) else json.dumps(message)
        with self._send_lock:
            ws.send(data)

    def drop_connection(self) -> None:
        """Cut the TCP connection without a close frame, as a flaky network would."""
        self._interrupt()

    def wait_connected(self, timeout: float = 5.0) -> bool:
        return wait_until(
            lambda: self.connected and any(n.get("type") == "room.welcome" for n in self.notices),
            timeout,
        )

    # -- the thread ----------------------------------------------------------------
    def connect_url(self) -> str:
        query = {"token": self.token}
        if self.last_seq is not None:
            query["after"] = self.last_seq
        return f"{self.url}?{urlencode(query)}"

    def _run_safely(self) -> None:
        while not self._stop.is_set():
            try:
                self.run()
                self.attempt = 0  # it was connected: start the backoff afresh
            except (OSError, websocket.WebSocketException, ssl.SSLError, ValueError) as exc:
                if self._stop.is_set():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}")
            if self._stop.is_set():
                return
            delay = backoff_delay(self.attempt, self.base_delay, self.max_delay, self.rng)
            self.delays.append(delay)
            self.attempt += 1
            self._stop.wait(delay)

    def run(self) -> None:
        """One WebSocket session: connect, then read until it ends."""
        # A Python client is not a browser: it sends no Origin unless told to
        # act as one (websocket-client would make one up from the URL).
        ws = websocket.create_connection(
            self.connect_url(), timeout=10, origin=self.origin, sslopt=self.sslopt,
            suppress_origin=self.origin is None, enable_multithread=True,
        )  # fmt: skip
        ws.settimeout(self.ping_interval or None)
        self._ws = ws
        self.connections += 1
        self.attempt = 0
        awaiting_pong = False
        try:
            while not self._stop.is_set():
                try:
                    # control_frame=True: pings and pongs come back too, so
                    # any frame at all proves the connection alive.
                    opcode, data = ws.recv_data(control_frame=True)
                except websocket.WebSocketTimeoutException:
                    if awaiting_pong:  # silence for two intervals: presumed dead
                        self.watchdog_reconnects += 1
                        self.close_codes.append(None)
                        return
                    with self._send_lock:
                        ws.ping()
                    self.pings_sent += 1
                    awaiting_pong = True
                    continue
                awaiting_pong = False
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.close_codes.append(_close_code(data))
                    return
                if opcode != websocket.ABNF.OPCODE_TEXT:
                    continue
                self._handle(data)
        except websocket.WebSocketConnectionClosedException:
            self.close_codes.append(None)
        finally:
            self._ws = None
            ws.close(timeout=0.2)

    def _handle(self, data: bytes) -> None:
        received_ns = time.monotonic_ns()
        message = json.loads(data)
        if "seq" in message:
            event = Event.from_dict(message)
            self.last_seq = max(self.last_seq or 0, event.seq)
            self.recorder.record(event, received_ns)
        else:
            if message.get("type") == "room.welcome" and self.last_seq is None:
                # Joined live: from now on, resume from where the room was.
                self.last_seq = message.get("last_seq", 0)
            self.notices.append(message)

    def _interrupt(self) -> None:
        ws = self._ws
        sock = getattr(ws, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _close_code(data: bytes) -> int | None:
    return int.from_bytes(data[:2], "big") if len(data) >= 2 else None
