"""The baseline servers of notebook 00, on the wire."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from servers import ServerThread
from servers.common import app_with
from servers.cursor import resync_notice
from servers.polling import routes as polling_routes
from servers.streaming import routes as streaming_routes

APP = app_with(polling_routes, streaming_routes)


@pytest.fixture
def server():
    with ServerThread(APP, name="baseline") as s:
        yield s


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("after=abc", "ASCII digits"),
        ("after=-3", "ASCII digits"),
        ("after=99", "future"),
    ],
)
@pytest.mark.parametrize("path", ["/events", "/events/wait", "/stream/ndjson"])
def test_bad_cursors_get_a_400_with_a_reason(server, path, query, fragment):
    resp = requests.get(f"{server.url}{path}?{query}", timeout=5)
    assert resp.status_code == 400
    assert fragment in resp.json()["error"]


@pytest.mark.parametrize("timeout", ["x", "-1", "1000"])
def test_long_poll_rejects_a_bad_timeout(server, timeout):
    resp = requests.get(f"{server.url}/events/wait?timeout={timeout}", timeout=5)
    assert resp.status_code == 400 and "timeout" in resp.json()["error"]


def test_long_poll_waits_for_the_next_event(server):
    timer = threading.Timer(0.3, lambda: server.publish("late"))
    timer.start()
    started = time.monotonic()
    body = requests.get(f"{server.url}/events/wait?after=0&timeout=5", timeout=10).json()
    assert time.monotonic() - started >= 0.25
    assert [e["type"] for e in body["events"]] == ["late"]


def test_long_poll_times_out_empty(server):
    body = requests.get(f"{server.url}/events/wait?after=0&timeout=0.1", timeout=5).json()
    assert body == {"events": [], "last_seq": 0, "resync": None}


def test_stream_is_chunked_ndjson_and_replays_after_a_cursor(server):
    for i in range(3):
        server.publish("t", {"i": i})
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /stream/ndjson?after=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        data = b""
        while b'"seq":3' not in data:  # the backlog is sent as one chunk
            data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert b"Content-Type: application/x-ndjson" in head
    assert b"Content-Length" not in head
    size, _, rest = body.partition(b"\r\n")
    chunk = rest[: int(size, 16)]
    lines = [json.loads(line) for line in chunk.splitlines()]
    assert [e["seq"] for e in lines] == [2, 3]


def test_truncated_log_is_announced_not_skipped():
    from servers.hub import EventHub

    with ServerThread(APP) as server:
        server.hub.log = type(server.hub.log)(capacity=2)  # a tiny log for this test
        for _ in range(5):
            server.publish("t")
        resp = requests.get(f"{server.url}/stream/ndjson?after=1", stream=True, timeout=5)
        lines = resp.iter_lines()
        first = json.loads(next(lines))
        assert first == resync_notice(1, 5, first["reason"], missed=(2, 3))
        assert [json.loads(next(lines))["seq"] for _ in range(2)] == [4, 5]
        resp.close()
        body = requests.get(f"{server.url}/events?after=1", timeout=5).json()
        assert body["resync"] == first and [e["seq"] for e in body["events"]] == [4, 5]
    assert EventHub  # imported for the type above


def test_slow_stream_reader_is_cut_off_with_a_resync_notice():
    with ServerThread(APP) as server:
        server.hub.queue_size = 5
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            # A reader that never reads: a tiny receive buffer fills at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /stream/ndjson HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.2)
            payload = {"pad": "x" * 2000}
            for _ in range(2000):
                server.publish("big", payload)
            time.sleep(0.5)
            # The server dropped this subscriber instead of queueing forever.
            assert server.call(lambda: server.hub.subscriber_count) == 0
            sock.settimeout(5)
            data = b""
            while b'"type":"resync"' not in data:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            assert b"client too slow" in data
