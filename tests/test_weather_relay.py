"""lab.weather.relay: each dial does what it says, measured on real sockets.

Every wait here is bounded (socket timeouts of a second or two), and the
timing checks have wide margins: they prove "added about 100 ms", not a
benchmark figure.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

from lab.weather.relay import Weather, WeatherRelay

Handler = Callable[[socket.socket], None]


class TinyServer:
    """A TCP server on 127.0.0.1 running ``handler(conn)`` per connection."""

    def __init__(self, handler: Handler) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handler = handler
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for conn in self.conns:
            conn.close()


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


@pytest.fixture
def echo_server():
    server = TinyServer(echo)
    yield server
    server.close()


def connect(relay: WeatherRelay, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", relay.port), timeout=timeout)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.perf_counter()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        got += sock.recv(65536)
    assert got == payload
    return time.perf_counter() - start


def test_clear_weather_passes_bytes_and_counts_them(echo_server):
    with WeatherRelay(echo_server.port) as relay, connect(relay) as sock:
        round_trip(sock, b"x" * 1000)
        stats = relay.stats()
    assert (stats.up, stats.down, stats.connections) == (1000, 1000, 1)


def test_latency_is_added_each_way(echo_server):
    with WeatherRelay(echo_server.port, Weather(latency_ms=100)) as relay, connect(relay) as sock:
        rtts = [round_trip(sock) for _ in range(3)]
    # 100 ms each way: a round trip of about 200 ms (loopback adds well under 1 ms).
    assert all(0.19 <= rtt <= 0.45 for rtt in rtts), rtts


def test_dials_turn_while_it_runs(echo_server):
    with WeatherRelay(echo_server.port) as relay, connect(relay) as sock:
        fast = round_trip(sock)
        relay.weather.latency_ms = 80
        slow = round_trip(sock)
    assert fast < 0.08 and slow >= 0.15, (fast, slow)


def test_bandwidth_caps_throughput():
    def send_50k(conn: socket.socket) -> None:
        conn.sendall(b"b" * 50_000)
        conn.close()

    server = TinyServer(send_50k)
    try:
        # 800 kbit/s is 100 kB/s: 50 kB take about half a second to come down.
        with WeatherRelay(server.port, Weather(bandwidth_kbps=800)) as relay:
            with connect(relay, timeout=5) as sock:
                start, got = time.perf_counter(), 0
                while data := sock.recv(65536):
                    got += len(data)
                elapsed = time.perf_counter() - start
    finally:
        server.close()
    assert got == 50_000 and 0.45 <= elapsed <= 2.0, (got, elapsed)


def test_idle_timeout_drops_silently_and_a_write_gets_a_reset():
    pushed = threading.Event()
    server_saw_close = threading.Event()

    def push_later(conn: socket.socket) -> None:
        conn.sendall(b"hello\n")
        pushed.wait(5)
        conn.sendall(b"you will never see this\n")
        conn.settimeout(2)
        try:
            if conn.recv(100) == b"":
                server_saw_close.set()
        except (TimeoutError, OSError):
            pass

    server = TinyServer(push_later)
    try:
        with WeatherRelay(server.port, Weather(idle_timeout_s=0.3)) as relay:
            with connect(relay, timeout=1.0) as sock:
                assert sock.recv(100) == b"hello\n"
                time.sleep(0.6)  # idle for twice the NAT's timeout
                assert relay.stats().silent_drops == 1
                pushed.set()
                # No FIN, no RST, no data: the client just waits.
                with pytest.raises(TimeoutError):
                    sock.recv(100)
                # It finds out when it writes: the reset comes back.
                sock.sendall(b"anyone there?\n")
                with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
                    deadline = time.monotonic() + 2
                    while time.monotonic() < deadline:
                        if sock.recv(100) == b"":
                            break
                        time.sleep(0.05)
            # The server was never told: its connection did not see a close.
            assert not server_saw_close.is_set()
            assert relay.stats().resets == 1
    finally:
        server.close()


def test_a_flap_resets_every_connection(echo_server):
    with WeatherRelay(echo_server.port, Weather(flap_every_s=0.3)) as relay:
        socks = [connect(relay) for _ in range(3)]
        for sock in socks:
            round_trip(sock)
        for sock in socks:
            with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
                sock.settimeout(2)
                if sock.recv(100) == b"":
                    raise ConnectionResetError("closed")
            sock.close()
        assert relay.stats().resets >= 3 and relay.open_connections() == 0


def test_buffering_middlebox_holds_the_response_until_it_ends():
    def three_chunks_then_close(conn: socket.socket) -> None:
        for n in range(3):
            conn.sendall(f"chunk {n}\n".encode())
            time.sleep(0.15)
        conn.close()

    def first_byte_and_body(weather: Weather) -> tuple[float, bytes]:
        server = TinyServer(three_chunks_then_close)
        try:
            with WeatherRelay(server.port, weather) as relay, connect(relay) as sock:
                start = time.perf_counter()
                body = sock.recv(100)
                first = time.perf_counter() - start
                while data := sock.recv(100):
                    body += data
                return first, body
        finally:
            server.close()

    streamed_first, streamed = first_byte_and_body(Weather())
    held_first, held = first_byte_and_body(Weather(buffer_bytes=1 << 20))
    assert streamed == held == b"chunk 0\nchunk 1\nchunk 2\n"
    assert streamed_first < 0.1 <= 0.35 <= held_first, (streamed_first, held_first)


def test_a_down_server_resets_the_client():
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with WeatherRelay(port) as relay:
        # The reset may come during connect() or on the first read.
        with pytest.raises((ConnectionResetError, ConnectionAbortedError)):
            with connect(relay) as sock:
                if sock.recv(100) == b"":
                    raise ConnectionResetError("closed")


def test_close_ends_the_thread_and_every_connection(echo_server):
    relay = WeatherRelay(echo_server.port)
    sock = connect(relay)
    round_trip(sock)
    relay.close()
    assert not relay._thread.is_alive()
    assert sock.recv(100) == b""
    sock.close()
