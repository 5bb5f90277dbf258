"""servers.fanout: both encoding modes put the same bytes on the wire, resume,
bad input, draining and health. Driven with raw sockets and wsproto (an
independent RFC 6455 implementation), not only with our own client."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest
import requests
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from servers import fanout
from servers.cursor import RESYNC
from servers.events import Event, EventLog
from servers.fanout_once import http_chunk
from servers.runtime import ServerThread
from servers.sse_format import event_text as sse_text
from servers.wsframes import encode_text_frame


@pytest.fixture
def server():
    with ServerThread(fanout.make_app, name="fanout-test") as s:
        s.call(lambda: s.state.started, timeout=5)
        yield s


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


class RawWS:
    """A minimal WebSocket client on a plain socket: we see every byte."""

    def __init__(self, port: int, query: str = "") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self) -> bytes:
        """One whole frame, header included, exactly as received."""
        head = self._exactly(2)
        n = head[1] & 0x7F
        ext = b""
        if n == 126:
            ext = self._exactly(2)
            (n,) = struct.unpack("!H", ext)
        elif n == 127:
            ext = self._exactly(8)
            (n,) = struct.unpack("!Q", ext)
        return head + ext + self._exactly(n)

    def close(self) -> None:
        self.sock.close()


def decode_with_wsproto(frame: bytes) -> str:
    conn = Connection(ConnectionType.CLIENT)
    conn.receive_data(frame)
    (event,) = list(conn.events())
    assert isinstance(event, TextMessage)
    return event.data


def test_encode_text_frame_matches_rfc_and_wsproto():
    assert encode_text_frame("Hello") == bytes.fromhex("810548656c6c6f")
    for size in (0, 125, 126, 65535, 65536):
        text = "x" * size
        frame = encode_text_frame(text)
        assert decode_with_wsproto(frame) == text
    assert encode_text_frame("x" * 126)[:4] == bytes([0x81, 126, 0, 126])
    assert encode_text_frame("x" * 65536)[:2] == bytes([0x81, 127])
    assert decode_with_wsproto(encode_text_frame("héllo ✓")) == "héllo ✓"


@pytest.mark.parametrize("mode", ["naive", "once"])
def test_ws_broadcast_bytes_are_the_same_in_both_modes(server, mode):
    fanout.set_mode(server, mode)
    clients = [RawWS(server.port) for _ in range(3)]
    assert all(c.status == 101 for c in clients)
    assert wait_for(lambda: fanout.stats(server)["ws"] == 3)
    event = server.publish("news", {"text": "héllo"})
    want = encode_text_frame(event.to_json())
    for c in clients:
        frame = c.frame()
        assert frame == want  # unmasked, FIN, text, identical for everyone
        assert Event.from_json(decode_with_wsproto(frame)) == event
        c.close()
    stats = fanout.stats(server)
    assert stats["last_fanout"]["mode"] == mode and stats["last_fanout"]["clients"] == 3


def read_http_head(sock: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return tuple(buf.split(b"\r\n\r\n", 1))  # type: ignore[return-value]


def recv_until(sock: socket.socket, buf: bytes, marker: bytes) -> bytes:
    end = time.monotonic() + 5
    while marker not in buf and time.monotonic() < end:
        buf += sock.recv(65536)
    return buf


@pytest.mark.parametrize("mode", ["naive", "once"])
def test_sse_chunks_are_the_same_in_both_modes(server, mode):
    fanout.set_mode(server, mode)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    head, rest = read_http_head(sock)
    assert b"200" in head.split(b"\r\n")[0]
    assert b"text/event-stream" in head and b"chunked" in head.lower()
    assert wait_for(lambda: fanout.stats(server)["sse"] == 1)
    event = server.publish("price", {"v": 1})
    want = http_chunk(sse_text(event).encode())
    data = recv_until(sock, rest, want)
    assert data.endswith(want)
    sock.close()
    assert wait_for(lambda: fanout.stats(server)["sse"] == 0)


def test_sse_over_http10_is_not_chunked_in_once_mode(server):
    fanout.set_mode(server, "once")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /sse HTTP/1.0\r\nHost: x\r\n\r\n")
    head, rest = read_http_head(sock)
    assert b"chunked" not in head.lower()
    assert wait_for(lambda: fanout.stats(server)["sse"] == 1)
    event = server.publish("price", {"v": 2})
    data = recv_until(sock, rest, sse_text(event).encode())
    assert data.endswith(sse_text(event).encode())
    sock.close()


def test_ws_resume_replays_missed_events_then_live(server):
    first = [server.publish("e", {"i": i}) for i in range(3)]
    assert wait_for(lambda: fanout.stats(server)["last_seq"] == 3)
    c = RawWS(server.port, f"?after={first[0].seq}")
    assert c.status == 101
    got = [Event.from_json(decode_with_wsproto(c.frame())).seq for _ in range(2)]
    assert got == [2, 3]
    assert wait_for(lambda: fanout.stats(server)["ws"] == 1)
    live = server.publish("e", {"i": 3})
    assert Event.from_json(decode_with_wsproto(c.frame())).seq == live.seq
    c.close()


def test_sse_resume_with_last_event_id(server):
    for i in range(3):
        server.publish("e", {"i": i})
    assert wait_for(lambda: fanout.stats(server)["last_seq"] == 3)
    r = requests.get(f"{server.url}/sse", headers={"Last-Event-ID": "1"}, stream=True, timeout=5)
    text = b""
    for chunk in r.iter_content(None):
        text += chunk
        if b"id: 3" in text:
            break
    r.close()
    assert b"id: 2\n" in text and b"id: 3\n" in text and b"id: 1\n" not in text


@pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
def test_bad_after_is_400_before_upgrading(server, value):
    c = RawWS(server.port, f"?after={value}")
    assert c.status == 400
    c.close()
    r = requests.get(f"{server.url}/sse", headers={"Last-Event-ID": value}, timeout=5)
    assert r.status_code == 400 and "error" in r.json()
    assert fanout.stats(server)["ws"] == 0 and fanout.stats(server)["sse"] == 0


def test_a_cursor_from_the_future_is_400_before_upgrading(server):
    # servers.cursor's one rule: a number this server never handed out.
    c = RawWS(server.port, "?after=99")
    assert c.status == 400
    while b"}" not in c.buf:  # the JSON reason
        c.buf += c.sock.recv(65536)
    assert b"future" in c.buf
    c.close()


def test_ws_resume_from_before_the_log_gets_a_resync_then_the_rest(server):
    server.state.log = EventLog(capacity=2)  # a tiny log for this test
    for i in range(4):
        server.publish("e", {"i": i})
    assert wait_for(lambda: fanout.stats(server)["last_seq"] == 4)
    c = RawWS(server.port, "?after=1")
    assert c.status == 101
    msg = json.loads(decode_with_wsproto(c.frame()))
    assert msg["type"] == RESYNC and msg["missed"] == [2, 2] and msg["last_seq"] == 4
    assert [Event.from_json(decode_with_wsproto(c.frame())).seq for _ in range(2)] == [3, 4]
    c.close()


def test_publish_endpoint_and_its_bad_input(server):
    r = requests.post(f"{server.url}/publish", json={"type": "a", "payload": {"x": 1}}, timeout=5)
    assert r.status_code == 200 and r.json()["seq"] == 1
    for body in (b"not json", b"[]", b'{"payload": {}}', b'{"type": "a", "payload": [1]}'):
        r = requests.post(f"{server.url}/publish", data=body, timeout=5)
        assert r.status_code == 400, body
        assert r.json()["error"]
    r = requests.post(f"{server.url}/mode", params={"mode": "fast"}, timeout=5)
    assert r.status_code == 400 and "naive" in r.json()["error"]
    with pytest.raises(ValueError):
        fanout.set_mode(server, "fast")


def test_dead_clients_are_dropped(server):
    clients = [RawWS(server.port) for _ in range(5)]
    assert wait_for(lambda: fanout.stats(server)["ws"] == 5)
    for c in clients:
        c.close()
    assert wait_for(lambda: fanout.stats(server)["ws"] == 0)
    server.publish("e", {})  # nobody left: no error
    assert wait_for(lambda: fanout.stats(server)["last_fanout"].get("clients") == 0)


def test_drain_closes_with_1001_and_fails_the_health_check(server):
    assert requests.get(f"{server.url}/health", timeout=5).json()["status"] == "ok"
    c = RawWS(server.port)
    assert wait_for(lambda: fanout.stats(server)["ws"] == 1)
    sse = requests.get(f"{server.url}/sse", stream=True, timeout=5)
    assert wait_for(lambda: fanout.stats(server)["sse"] == 1)
    r = requests.post(f"{server.url}/drain", timeout=5)
    assert r.json() == {"closing": 2}
    frame = c.frame()
    assert frame[0] & 0x0F == 0x8 and struct.unpack("!H", frame[2:4])[0] == 1001
    c.close()
    body = b"".join(sse.iter_content(None))  # the stream ends instead of hanging
    assert body.startswith(b"retry:")
    health = requests.get(f"{server.url}/health", timeout=5)
    assert health.status_code == 503 and health.json()["status"] == "draining"
    late = RawWS(server.port)
    assert late.status == 503
    late.close()


def test_the_tornado_internals_the_streams_rely_on_are_still_there(server):
    """Each private (or undocumented) attribute of Tornado used in servers/
    fanout*.py, sse*.py, streaming*.py, polling.py and common.py, checked on
    live connections: if Tornado renames one, this fails with the place to fix."""
    c = RawWS(server.port)
    r = requests.get(f"{server.url}/sse", stream=True, timeout=5)
    assert wait_for(lambda: fanout.stats(server)["ws"] == 1 and fanout.stats(server)["sse"] == 1)

    def look() -> dict:
        (ws,) = server.state.ws
        (sse,) = server.state.sse
        conn = ws.ws_connection
        return {
            # fanout_once.py: does this WebSocket compress (per-client bytes)?
            "WebSocketProtocol13._compressor": hasattr(conn, "_compressor"),
            # fanout_once.py, fanout_slow.py: the WebSocket's IOStream
            "WebSocketProtocol.stream": hasattr(conn, "stream"),
            # fanout_once.py: is this response chunked (HTTP/1.1) or not?
            "HTTP1Connection._chunking_output": hasattr(sse.request.connection, "_chunking_output"),
            # sse_slow.py, polling.py, streaming_buffering.py: the request's IOStream
            "HTTP1Connection.stream": hasattr(sse.request.connection, "stream"),
        }

    found = server.call(look)
    r.close()
    c.close()
    missing = [name for name, ok in found.items() if not ok]
    assert not missing, f"Tornado no longer has {missing}: see the comments where they are used"
