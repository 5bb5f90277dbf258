"""The runtime's server-wide limits (issue 15, items 2 and 7).

* bodies over ``max_body_size`` are refused while they are read, never
  buffered whole (Content-Length and chunked), measured as RSS growth;
* partial headers, idle keep-alive connections and slow bodies are cut after
  their timeouts, while SSE, NDJSON, long polls and WebSockets that sit quiet
  for longer are not.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from pathlib import Path

import psutil
import requests
import websocket
from tornado.web import Application, RequestHandler

from servers import ServerThread, polling, runtime, sse, streaming
from servers import websocket as room
from servers.common import app_with

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


class Echo(RequestHandler):
    """Answers how many body bytes it got: Tornado buffers the whole body first."""

    def post(self) -> None:
        self.write({"bytes": len(self.request.body)})


def echo_app(**settings):
    return lambda hub: Application([(r"/echo", Echo)], **settings)


def raw_connect(server: ServerThread, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    data = b""
    for _ in range(1000):  # bounded: each recv waits at most the socket timeout
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data


def announce_body(server: ServerThread, length: int) -> bytes:
    """Send only the headers of a POST with a ``length``-byte body; the answer."""
    sock = raw_connect(server)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % length)
    answer = read_until_closed(sock)
    sock.close()
    return answer


BARE_400 = b"HTTP/1.1 400 Bad Request\r\n\r\n"  # what Tornado answers, then it closes


def rss() -> int:
    return psutil.Process().memory_info().rss


# -- item 2: body size, server-wide ---------------------------------------------
def test_every_server_gets_the_default_limits():
    with ServerThread(echo_app()) as server:
        params = server._http.conn_params
        assert params.max_body_size == runtime.LIMIT_DEFAULTS["max_body_size"] == MiB
        assert params.header_timeout == runtime.LIMIT_DEFAULTS["idle_connection_timeout"] == 30
        assert params.body_timeout == runtime.LIMIT_DEFAULTS["body_timeout"] == 30


def test_content_length_over_the_limit_is_refused_before_the_body_is_read():
    with ServerThread(echo_app()) as server:
        started = time.monotonic()
        # Only the headers: a server that meant to read 30 MiB would wait for
        # the body here (until the socket timeout), not answer and close.
        assert announce_body(server, 30 * MiB) == BARE_400
        assert time.monotonic() - started < 2
        # The server is fine and takes a body under the limit.
        ok = requests.post(f"{server.url}/echo", data=b"x" * (MiB - 1), timeout=5)
        assert ok.json() == {"bytes": MiB - 1}


def test_an_app_can_ask_for_a_smaller_or_larger_limit():
    with ServerThread(echo_app(max_body_size=1000)) as small:
        assert requests.post(f"{small.url}/echo", data=b"x" * 1000, timeout=5).ok
        assert announce_body(small, 1001) == BARE_400
    with ServerThread(echo_app(max_body_size=3 * MiB)) as large:
        resp = requests.post(f"{large.url}/echo", data=b"x" * (2 * MiB), timeout=5)
        assert resp.json() == {"bytes": 2 * MiB}


def test_a_30_mib_chunked_body_is_cut_while_reading_and_costs_little_memory():
    chunk = b"x" * 65536
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    with ServerThread(echo_app()) as server:
        requests.post(f"{server.url}/echo", data=b"warm up", timeout=5)
        sock = raw_connect(server)
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        before = peak = rss()
        sent = 0
        try:
            for i in range(30 * MiB // len(chunk)):  # 480 chunks: 30 MiB
                sock.sendall(frame)
                sent += len(chunk)
                if i % 8 == 0:
                    peak = max(peak, rss())
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed: what we want
        peak = max(peak, rss())
        growth = peak - before
        print(f"chunked: cut after {sent / MiB:.1f} MiB sent, RSS +{growth / MiB:.1f} MiB")
        # The socket buffers hold a few MiB; the old 100 MB limit took all 30.
        assert sent < 12 * MiB, f"the server read {sent / MiB:.1f} MiB of a 30 MiB body"
        assert growth < 8 * MiB, f"RSS grew {growth / MiB:.1f} MiB"
        sock.settimeout(2)
        answer = read_until_closed(sock)
        sock.close()
        # Tornado writes a bare 400 and closes; as we were still sending, the
        # close usually arrives as a reset that discards that 400.
        assert answer in (b"", BARE_400), answer[:200]
        assert requests.post(f"{server.url}/echo", data=b"ok", timeout=5).json() == {"bytes": 2}


# -- item 7: timeouts ------------------------------------------------------------
def wait_closed(socks: list[socket.socket], deadline: float, trickle=None) -> dict:
    """Seconds until each socket saw the server close it (missing: never did).

    ``trickle``, if given, is a socket to send one more header byte on every
    0.1 s, like a slowloris client keeping its request "alive"."""
    start = time.monotonic()
    closed: dict[socket.socket, float] = {}
    while len(closed) < len(socks) and time.monotonic() < deadline:
        readable, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.1)
        for s in readable:
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            if not data:
                closed[s] = time.monotonic() - start
        if trickle is not None and trickle not in closed:
            try:
                trickle.send(b"a")
            except OSError:
                pass
    return closed


def test_partial_headers_idle_connections_and_slow_bodies_are_closed_in_time():
    timeout = 0.5
    app = echo_app(idle_connection_timeout=timeout, body_timeout=timeout)
    with ServerThread(app) as server:
        silent = raw_connect(server)
        partial = raw_connect(server)
        partial.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
        slowloris = raw_connect(server)
        slowloris.sendall(b"GET /echo HTTP/1.1\r\nX-Long: ")
        slow_body = raw_connect(server)
        slow_body.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123")
        socks = [silent, partial, slowloris, slow_body]
        closed = wait_closed(socks, time.monotonic() + 5, trickle=slowloris)
        for s in socks:
            s.close()
        names = dict(zip(socks, ["silent", "partial", "slowloris", "slow body"], strict=True))
        assert {names[s] for s in closed} == set(names.values()), "still open after 5 s"
        for s, after in closed.items():
            assert timeout * 0.8 <= after < timeout + 1.0, f"{names[s]} closed after {after:.2f} s"
        assert requests.post(f"{server.url}/echo", data=b"ok", timeout=5).ok


def test_quiet_streams_long_polls_and_websockets_outlive_the_timeouts():
    timeout = 0.3
    routes = app_with(polling.routes, streaming.routes, sse.routes, room.routes)

    def factory(hub):
        app = routes(hub)
        app.settings.update(idle_connection_timeout=timeout, body_timeout=timeout)
        return app

    with ServerThread(factory) as server:
        sse_resp = requests.get(f"{server.url}/stream/sse", stream=True, timeout=(5, 10))
        ndjson = requests.get(f"{server.url}/stream/ndjson", stream=True, timeout=(5, 10))
        ws = websocket.create_connection(f"{server.ws_url}/ws/room?token=demo", timeout=10)
        assert json.loads(ws.recv())["type"] == "room.welcome"
        long_poll: list = []
        poller = threading.Thread(
            target=lambda: long_poll.append(
                requests.get(f"{server.url}/events/wait?after=0&timeout=10", timeout=15)
            )
        )
        poller.start()
        # A canary with partial headers, opened after the others: once the
        # server has cut it, every quiet connection above is older than the timeout.
        canary = raw_connect(server)
        canary.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        assert wait_closed([canary], started + 5), "the header timeout never fired"
        canary.close()
        assert time.monotonic() - started >= timeout * 0.8
        assert server.open_connections >= 4  # SSE, NDJSON, WebSocket, long poll

        server.publish("after.quiet", {"n": 1})
        poller.join(10)
        assert long_poll and long_poll[0].json()["events"][0]["type"] == "after.quiet"
        assert json.loads(ws.recv())["type"] == "after.quiet"
        assert json.loads(next(ndjson.iter_lines()))["type"] == "after.quiet"
        sse_lines = sse_resp.iter_lines()
        assert any(b"after.quiet" in next(sse_lines) for _ in range(20))
        ws.close()
        sse_resp.close()
        ndjson.close()
