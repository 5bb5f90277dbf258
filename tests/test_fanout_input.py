"""servers.fanout: what clients and the backplane send is checked (issue 15,
items 4 and 5). An event type cannot smuggle SSE fields; a resume number is
ASCII digits or a 400 with the reason, never a 500."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import socket
import threading
from urllib.parse import quote

import pytest
import requests

from lab.scale import redis_server
from lab.waiting import wait_until
from servers import fanout, sse_format
from servers.events import Event
from servers.runtime import ServerThread

FORGED = "x\nid: 999999\ndata: forged"
needs_redis = pytest.mark.skipif(
    not redis_server.available(), reason="redis-server is not installed (CI installs it with apt)"
)


@pytest.fixture
def server():
    with ServerThread(fanout.make_app, name="fanout-input") as s:
        s.call(lambda: s.state.started, timeout=5)
        yield s


class SSEReader(threading.Thread):
    """Keeps every byte of one /sse stream, as the client received it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.response = requests.get(f"{url}/sse", stream=True, timeout=10)
        self.data = b""

    def run(self) -> None:
        try:
            for chunk in self.response.iter_content(None):
                self.data += chunk
        except (OSError, requests.RequestException):
            return


def stop(server, reader: SSEReader) -> None:
    server.call(server.state.drain)  # ends the stream: the thread returns
    reader.join(5)
    reader.response.close()


# -- item 4: event types ------------------------------------------------------------
def test_the_sse_encoder_refuses_cr_and_lf_in_any_field():
    with pytest.raises(ValueError, match="CR or LF"):
        sse_format.event_text(Event(1, FORGED, {}))
    for name, value in (("event", "a\rb"), ("id", "1\n2")):
        with pytest.raises(ValueError, match="CR or LF"):
            sse_format.format_event("x", **{name: value})
    # data may hold line breaks: each line is its own data: field, nothing forged
    assert sse_format.format_event("line\nid: 9") == "data: line\ndata: id: 9\n\n"
    assert sse_format.event_text(Event(7, "price.tick", {"v": 1})) == (
        'id: 7\nevent: price.tick\ndata: {"seq":7,"type":"price.tick","payload":{"v":1},'
        '"sent_ns":0}\n\n'
    )


def test_publish_refuses_a_type_with_a_newline_and_no_client_sees_it(server):
    reader = SSEReader(server.url)
    reader.start()
    assert wait_until(lambda: fanout.stats(server)["sse"] == 1, timeout=5)
    for bad in (FORGED, "x\r", "", "a" * 65, "tab\there"):
        r = requests.post(f"{server.url}/publish", json={"type": bad, "payload": {}}, timeout=5)
        assert r.status_code == 400, bad
        assert "event type" in r.json()["error"]
    good = requests.post(f"{server.url}/publish", json={"type": "ok", "payload": {}}, timeout=5)
    assert good.status_code == 200 and good.json()["seq"] == 1
    assert wait_until(lambda: b"id: 1\n" in reader.data, timeout=5)
    stop(server, reader)
    assert b"999999" not in reader.data and b"forged" not in reader.data


def test_in_memory_backplane_refuses_a_bad_type():
    delivered = []
    backplane = fanout.InMemoryBackplane()

    async def run() -> None:
        await backplane.start(delivered.append)
        with pytest.raises(ValueError, match="event type"):
            await backplane.publish(FORGED, {}, 0)
        await backplane.publish("ok", {}, 0)

    asyncio.run(run())
    assert [e.type for e in delivered] == ["ok"]


@needs_redis
def test_bad_messages_from_redis_are_dropped_and_the_subscriber_keeps_going(caplog):
    import redis as redis_py

    with redis_server.RedisServer() as rs:
        factory = fanout.factory(rs.url)
        with ServerThread(factory, name="fanout-redis-input") as server:
            server.call(lambda: server.state.started, timeout=10)
            reader = SSEReader(server.url)
            reader.start()
            assert wait_until(lambda: fanout.stats(server)["sse"] == 1, timeout=5)
            r = redis_py.Redis.from_url(rs.url)

            def raw(body: bytes) -> None:
                # Numbered like the Lua script does, so only the content is wrong.
                seq = r.incr("fanout:seq")
                r.publish("fanout:events", b"%d|" % seq + body)

            event = {"payload": {}, "sent_ns": 1}
            with caplog.at_level(logging.WARNING, logger="servers.fanout"):
                raw(json.dumps({**event, "type": FORGED}).encode())
                raw(b"not json")
                raw(b"[1, 2]")
                raw(json.dumps({**event, "type": 5}).encode())
                raw(b"[" * 5000)
                r.publish("fanout:events", b"no seq prefix")
                r.publish("fanout:events", "٣|{}".encode())
                seq = requests.post(
                    f"{server.url}/publish", json={"type": "ok", "payload": {}}, timeout=5
                ).json()["seq"]
                assert wait_until(lambda: b"id: %d\n" % seq in reader.data, timeout=10)
            stats = fanout.stats(server)
            assert stats["dropped"] == 7 and stats["last_seq"] == seq
            # One log line for the burst, not seven: the log is rate-limited.
            dropped_lines = [m for m in caplog.messages if "dropped" in m]
            assert len(dropped_lines) == 1, caplog.messages
            stop(server, reader)
            r.close()
    assert b"999999" not in reader.data and b"forged" not in reader.data
    assert reader.data.count(b"\nid: ") + reader.data.startswith(b"id: ") == 1


# -- item 5: resume numbers ------------------------------------------------------------
BAD_NUMBERS = ["²", "+5", "٣", "", "-1", "5" * 5000, "1.5", "abc", "1 2", "0x10"]


def ws_status(port: int, query: str) -> tuple[int, bytes]:
    """Status and body of a WebSocket handshake on a plain socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "closed before the response head"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        while length and len(body) < int(length.group(1)):
            body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_bad_after_is_a_400_with_the_reason(server, value):
    status, body = ws_status(server.port, "?after=" + quote(value, safe=""))
    assert status == 400 and "after" in json.loads(body)["error"], body
    if value == "+5":  # unencoded, "+" in a query string is a space
        status, body = ws_status(server.port, "?after=+5")
        assert status == 400, body
    r = requests.get(f"{server.url}/sse", params={"after": value}, timeout=5)
    assert r.status_code == 400 and "after" in r.json()["error"]
    assert fanout.stats(server)["ws"] == 0 and fanout.stats(server)["sse"] == 0


@pytest.mark.parametrize("value", [v for v in BAD_NUMBERS if v])
def test_a_bad_last_event_id_is_a_400_with_the_reason(server, value):
    # As bytes: requests would refuse to send "٣" in a header (not Latin-1).
    r = requests.get(f"{server.url}/sse", headers={"Last-Event-ID": value.encode()}, timeout=5)
    assert r.status_code == 400 and "Last-Event-ID" in r.json()["error"], r.text
    assert "Traceback" not in r.text


def test_a_blank_last_event_id_is_a_fresh_client_as_the_sse_spec_says(server):
    # servers.sse and fan-out alike: an empty id is the spec's "no id yet".
    r = requests.get(f"{server.url}/sse", headers={"Last-Event-ID": ""}, stream=True, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/event-stream"
    r.close()


def test_a_number_from_the_future_is_a_400_with_the_reason(server):
    # servers.cursor's one rule: a cursor this server never handed out.
    server.publish("e", {})
    assert wait_until(lambda: fanout.stats(server)["last_seq"] == 1, timeout=5)
    future = "9" * 18  # the most digits a cursor may have
    status, body = ws_status(server.port, f"?after={future}")
    assert status == 400 and "future" in json.loads(body)["error"], body
    r = requests.get(f"{server.url}/sse", headers={"Last-Event-ID": future}, timeout=5)
    assert r.status_code == 400 and "future" in r.json()["error"] and "last is 1" in r.text
    assert fanout.stats(server)["ws"] == 0 and fanout.stats(server)["sse"] == 0
    # A good request still works afterwards.
    assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
