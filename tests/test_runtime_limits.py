"""The runtime's server-wide limits (issue 15, items 2 and 7).

* bodies over ``max_body_size`` are refused while they are read, never
  buffered whole (Content-Length and chunked), measured as RSS growth;
* partial headers, idle keep-alive connections and slow bodies are cut after
  their timeouts, while SSE, NDJSON, long polls and WebSockets that sit quiet
  for longer are not;
* running out of file descriptors (in a subprocess with a low RLIMIT_NOFILE)
  logs a bounded number of lines, burns no CPU, and the server serves again.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
import websocket
from tornado.web import Application, RequestHandler

from servers import ServerThread, http_server, polling, sse, streaming
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
        assert params.max_body_size == http_server.LIMIT_DEFAULTS["max_body_size"] == MiB
        assert params.header_timeout == http_server.LIMIT_DEFAULTS["idle_connection_timeout"] == 30
        assert params.body_timeout == http_server.LIMIT_DEFAULTS["body_timeout"] == 30


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
        # Loopback socket buffers can hold up to ~10 MiB between them (Linux
        # tcp_wmem + tcp_rmem maxima); the old 100 MB limit took all 30.
        assert sent < 20 * MiB, f"the server read {sent / MiB:.1f} MiB of a 30 MiB body"
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
            assert timeout * 0.8 <= after < timeout + 2.0, f"{names[s]} closed after {after:.2f} s"
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


# -- item 7: out of file descriptors, in a subprocess -----------------------------
CHILD = textwrap.dedent(
    """
    import logging, resource, sys, time
    from tornado.web import Application, RequestHandler
    from servers import http_server, runtime

    http_server.ACCEPT_LOG_INTERVAL_S = float(sys.argv[2])
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="LOG %(message)s")

    class Ping(RequestHandler):
        def get(self):
            self.write("pong")

    server = runtime.ServerThread(lambda hub: Application([(r"/", Ping)])).start()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), hard))
    print(server.port, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.stop()
    """
)


@pytest.mark.skipif(os.name == "nt", reason="RLIMIT_NOFILE is POSIX (resource module)")
def test_running_out_of_fds_logs_a_few_lines_uses_no_cpu_and_recovers(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # A file, not a pipe: a flood of tracebacks would fill a pipe and block the child.
    err_path = tmp_path / "stderr.txt"
    with open(err_path, "w", encoding="utf-8") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, "48", "1.0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=ROOT,
            text=True,
        )
    held: list[socket.socket] = []
    wait_s = 3.0
    try:
        port = int(child.stdout.readline())
        proc = psutil.Process(child.pid)
        # More connections than the child has fds left: they are accepted
        # until EMFILE, the rest wait in the listen backlog.
        for _ in range(60):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        deadline = time.monotonic() + 5
        while proc.num_fds() < 47 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.num_fds() >= 47, "the child never ran out of fds"
        cpu_before = sum(proc.cpu_times()[:2])
        time.sleep(wait_s)  # the point is to watch a stretch of time pass
        cpu = sum(proc.cpu_times()[:2]) - cpu_before
        for s in held:
            s.close()
        held.clear()
        answer = get_when_served(f"http://127.0.0.1:{port}/", within=10)
    finally:
        for s in held:
            s.close()
        child.communicate(input="", timeout=10)
    lines = err_path.read_text(encoding="utf-8").splitlines()
    print(f"fd exhaustion: CPU {cpu / wait_s:.0%} over {wait_s} s, {len(lines)} log lines")
    assert cpu / wait_s < 0.15, f"the child used {cpu / wait_s:.0%} CPU while out of fds"
    # One line per second at most over a few seconds (the interval here is 1 s).
    assert 1 <= len(lines) <= 8, "\n".join(lines[:20])
    assert all(line.startswith("LOG cannot accept connections") for line in lines), lines[:5]
    # Once fds are free again (the held connections closed), it serves.
    assert answer == "pong"


def get_when_served(url: str, within: float) -> str | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            return requests.get(url, timeout=2).text
        except requests.RequestException:
            time.sleep(0.1)
    return None


def test_the_tornado_privates_our_accept_loop_relies_on_are_still_there():
    """``TrackingHTTPServer.add_sockets`` replaces Tornado's accept loop (see
    servers/http_server.py): it fills TCPServer's ``_sockets`` and ``_handlers``
    (what ``stop()`` closes) and hands sockets to ``_handle_connection``. No
    public API installs another accept loop; if Tornado renames these, fail here."""
    from tornado.tcpserver import TCPServer

    server = http_server.TrackingHTTPServer(Application([]))
    assert isinstance(getattr(server, "_sockets", None), dict), "TCPServer._sockets is gone"
    assert isinstance(getattr(server, "_handlers", None), dict), "TCPServer._handlers is gone"
    assert callable(getattr(TCPServer, "_handle_connection", None)), (
        "TCPServer._handle_connection is gone: servers/http_server.py must follow Tornado"
    )
