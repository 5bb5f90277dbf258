"""Network weather: a TCP relay on 127.0.0.1 whose dials make the link bad.

The client connects to the relay, the relay connects to one of the lab's
servers (always on 127.0.0.1; there is no other target), and every byte
passes through here, where the weather is applied:

- ``latency_ms`` each way, plus up to ``jitter_ms`` more, in order (TCP never
  reorders what the application reads, so neither does this relay);
- ``bandwidth_kbps`` per direction and connection;
- ``idle_timeout_s``: like a carrier NAT, a connection idle that long is
  forgotten *silently*: nothing more passes either way, no FIN, no RST. The
  client finds out only when it next writes (the server, seeing a segment
  for a connection it does not know, resets it: here the relay resets the
  client) or when a heartbeat it expects does not come. The server is never
  told: its side stays open until it gives up by itself;
- ``flap_every_s``: the link goes down every N seconds and every
  connection open at that moment is reset, both sides;
- ``buffer_bytes``: a buffering middlebox holds what the server sends until
  the HTTP response ends (its ``Content-Length`` or last chunk:
  ``httpframe.py``; or the server closes) or that many bytes are held.
  After a ``101`` (a WebSocket) it tunnels the bytes through.

What it cannot model: lost packets. Between two sockets on one machine TCP
never loses a byte, and a relay above TCP sees a stream, not packets; loss on
a real network shows up to an application as delay and stalls (while TCP
retransmits), which the latency, jitter and bandwidth dials give you.

One asyncio loop in one daemon thread serves every connection; dials may be
turned from any thread while it runs (``relay.weather.latency_ms = 200``).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass

from .httpframe import complete_prefix

HOST = "127.0.0.1"
CHUNK = 16 * 1024
TICK_S = 0.02  # how often idle timeouts and flaps are checked


@dataclass
class Weather:
    """The dials. ``None`` or 0 means "not on this network"."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth_kbps: float | None = None
    idle_timeout_s: float | None = None
    flap_every_s: float | None = None
    buffer_bytes: int | None = None


@dataclass
class RelayStats:
    up: int = 0  # bytes from the client towards the server
    down: int = 0  # bytes from the server back to the client
    connections: int = 0
    silent_drops: int = 0  # connections forgotten by the idle timeout
    resets: int = 0  # connections reset (flaps, or a write after a silent drop)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, not a FIN: SO_LINGER with a zero timeout."""
    sock = writer.get_extra_info("socket")
    linger = struct.pack("hh" if sys.platform == "win32" else "ii", 1, 0)  # on, 0 s
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    except OSError:
        pass  # already gone
    writer.transport.abort()


class _Pipe:
    """One client connection and its connection to the server."""

    def __init__(self, relay: WeatherRelay, client: asyncio.StreamWriter) -> None:
        self.relay = relay
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.last_activity = time.monotonic()
        self.forgotten = False  # silently dropped by the idle timeout
        self.closed = False
        self.tunnel = False  # a 101 went by: the middlebox no longer buffers
        self.tasks: list[asyncio.Task] = []

    async def pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool
    ) -> None:
        """Read one direction and write it on with the weather applied."""
        weather = self.relay.weather
        due = time.monotonic()  # when the previous chunk was delivered
        held = bytearray()  # the buffering middlebox (downstream only)
        while not self.closed:
            data = await reader.read(CHUNK)
            if not data:  # EOF: release anything held, then pass the FIN on
                if held and not self.forgotten:
                    writer.write(bytes(held))
                if not self.forgotten and writer.can_write_eof():
                    writer.write_eof()
                    await writer.drain()
                return
            if self.forgotten:
                if up:
                    # The client wrote into a forgotten mapping: its segment reaches
                    # the server under a new NAT port, and the server answers with
                    # an RST for a connection it does not know. Only the client is
                    # reset; the server's own connection stays open, unknowing.
                    self.relay._count_reset()
                    _reset(self.client)
                    return
                continue  # the server's bytes vanish, as at a NAT that forgot them
            self.last_activity = time.monotonic()
            self.relay._count(up, len(data))
            if not up and weather.buffer_bytes and not self.tunnel:
                held += data
                whole, self.tunnel = complete_prefix(held)
                if len(held) >= weather.buffer_bytes:
                    whole = len(held)  # the buffer is full: it all goes
                if not whole:
                    continue
                data, held = bytes(held[:whole]), held[whole:]
            delay = weather.latency_ms / 1000 + random.uniform(0, weather.jitter_ms) / 1000
            due = max(due, time.monotonic() + delay)
            if weather.bandwidth_kbps:
                due += len(data) * 8 / (weather.bandwidth_kbps * 1000)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if self.closed or self.forgotten:
                continue
            writer.write(data)
            await writer.drain()

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.server):
            if writer is not None:
                _reset(writer) if reset else writer.close()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self.relay._pipes.discard(self)


class WeatherRelay:
    """Listen on 127.0.0.1:<port>, forward to 127.0.0.1:``target_port``.

    ``relay.url`` / ``relay.ws_url`` is where clients connect instead of the
    server; ``relay.weather`` holds the dials; ``relay.stats()`` the counts;
    ``relay.close()`` ends every connection and the thread. A context manager.
    """

    def __init__(self, target_port: int, weather: Weather | None = None) -> None:
        self.target_port = target_port
        self.weather = weather or Weather()
        self._stats = RelayStats()
        self._lock = threading.Lock()
        self._pipes: set[_Pipe] = set()
        # (time.monotonic(), "connect" | "silent_drop" | "reset"): for "how
        # long did the client take to notice?" (``notice_times``)
        self.log: list[tuple[float, str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="weather-relay", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def stats(self) -> RelayStats:
        with self._lock:
            return RelayStats(**vars(self._stats))

    def open_connections(self) -> int:
        return len(self._pipes)

    def reset_all(self) -> None:
        """Reset every open connection now, as a change of network does."""

        def reset() -> None:
            for pipe in list(self._pipes):
                self._count_reset()
                pipe.close(reset=True)

        self._loop.call_soon_threadsafe(reset)

    # -- the loop thread -------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, HOST, 0))
        self._ticker = self._loop.create_task(self._tick())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _accept(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter):
        pipe = _Pipe(self, c_writer)
        try:
            s_reader, s_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            _reset(c_writer)  # the server is down: the client sees a refused-like reset
            return
        pipe.server = s_writer
        self._pipes.add(pipe)
        with self._lock:
            self._stats.connections += 1
            self.log.append((time.monotonic(), "connect"))
        pipe.tasks = [
            asyncio.create_task(pipe.pump(c_reader, s_writer, up=True)),
            asyncio.create_task(pipe.pump(s_reader, c_writer, up=False)),
        ]
        await asyncio.gather(*pipe.tasks, return_exceptions=True)
        pipe.close()

    async def _tick(self) -> None:
        """Apply the time-based weather: idle timeouts and link flaps."""
        last_flap = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            now, weather = time.monotonic(), self.weather
            if weather.idle_timeout_s:
                for pipe in list(self._pipes):
                    idle = now - pipe.last_activity
                    if not pipe.forgotten and idle > weather.idle_timeout_s:
                        pipe.forgotten = True
                        with self._lock:
                            self._stats.silent_drops += 1
                            self.log.append((now, "silent_drop"))
            if weather.flap_every_s and now - last_flap >= weather.flap_every_s:
                last_flap = now
                for pipe in list(self._pipes):
                    self._count_reset()
                    pipe.close(reset=True)
            elif not weather.flap_every_s:
                last_flap = now

    def _count(self, up: bool, n: int) -> None:
        with self._lock:
            if up:
                self._stats.up += n
            else:
                self._stats.down += n

    def _count_reset(self) -> None:
        with self._lock:
            self._stats.resets += 1
            self.log.append((time.monotonic(), "reset"))

    # -- stopping --------------------------------------------------------------
    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            self._ticker.cancel()
            self._server.close()
            for pipe in list(self._pipes):
                pipe.close()
            await self._server.wait_closed()
            # Let each connection's task end by itself (its pumps were cancelled):
            # a task destroyed while pending would print a warning at exit.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if rest:
                await asyncio.wait(rest, timeout=1.0)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> WeatherRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
