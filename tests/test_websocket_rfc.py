"""RFC 6455 on the wire: test vectors, hand-made frames, and an independent
implementation (wsproto) talking to the room.

Tornado 6.6 departs from the RFC in a few places (see protocol-facts.md);
``servers.websocket_strict.StrictProtocol`` fixes them and these tests prove it with
raw sockets, so no client library can hide the bytes.
"""

from __future__ import annotations

import json
import socket

import pytest
import websocket

from lab.wire.relay import CountingRelay
from lab.wire.websocket import (
    RawWebSocket,
    accept_value,
    close_payload,
    decode_frame,
    decode_frames,
    encode_frame,
    parse_close,
)
from servers import websocket as room
from servers.runtime import ServerThread

wsproto = pytest.importorskip("wsproto")
from wsproto import ConnectionType, WSConnection  # noqa: E402
from wsproto.events import (  # noqa: E402
    AcceptConnection,
    CloseConnection,
    Message,
    Request,
    TextMessage,
)


@pytest.fixture(scope="module")
def server():
    s = ServerThread(room.make_app, name="rfc-room").start()
    yield s
    s.stop()


def url(server) -> str:
    return f"{server.ws_url}/ws/room?token=demo"


# -- test vectors ------------------------------------------------------------------
def test_accept_value_matches_the_rfc_example():
    assert accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_decode_the_rfc_masked_hello():
    frame = decode_frame(bytes.fromhex("818537fa213d7f9f4d5158"))
    assert (frame.fin, frame.opcode, frame.masked, frame.length) == (True, 1, True, 5)
    assert frame.mask_key == bytes.fromhex("37fa213d") and frame.payload == b"Hello"
    assert frame.header_len == 6 and frame.size == 11


def test_decode_the_rfc_unmasked_hello_and_lengths():
    assert decode_frame(bytes.fromhex("810548656c6c6f")).payload == b"Hello"
    for n in (0, 125, 126, 65535, 65536):
        data = encode_frame(0x2, b"a" * n, masked=True, key=b"\x01\x02\x03\x04")
        frame = decode_frame(data)
        assert frame.length == n and frame.payload == b"a" * n
        assert frame.header_len == {0: 6, 125: 6, 126: 8, 65535: 8, 65536: 14}[n]
    with pytest.raises(ValueError):
        decode_frame(b"\x81")
    with pytest.raises(ValueError):
        decode_frame(bytes.fromhex("8105486c"))


def test_server_handshake_accept_header_is_right(server):
    raw = RawWebSocket(url(server))
    assert raw.status == 101
    assert raw.headers["sec-websocket-accept"] == accept_value(raw.key)
    raw.close()


def test_captured_frames_from_real_clients_decode(server):
    """Through a byte-counting relay: websocket-client's masked frame up,
    Tornado's unmasked frames down."""
    with CountingRelay(server.port, keep=8192) as relay:
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{relay.port}/ws/room?token=demo", suppress_origin=True
        )
        ws.recv()  # welcome
        ws.send(json.dumps({"type": "say", "text": "Hello"}))
        echoed = json.loads(ws.recv())
        ws.close()
        up = bytes(relay.captured["up"])
        down = bytes(relay.captured["down"])
    up_frames = decode_frames(up[up.index(b"\r\n\r\n") + 4 :])
    down_frames = decode_frames(down[down.index(b"\r\n\r\n") + 4 :])
    assert up_frames[0].masked and json.loads(up_frames[0].payload)["text"] == "Hello"
    assert not any(f.masked for f in down_frames)
    assert json.loads(down_frames[1].payload) == echoed
    assert up_frames[-1].opcode == 0x8  # the close handshake, both ways
    assert down_frames[-1].opcode == 0x8


# -- departures fixed ---------------------------------------------------------------
def fail_code(server, frame: bytes) -> tuple[int | None, str, bool]:
    raw = RawWebSocket(url(server))
    raw.recv_frame()  # welcome
    raw.send_raw(frame)
    frames = raw.recv_until_close()
    closed = raw.closed_by_peer(timeout=3)
    raw.close()
    assert frames and frames[-1].opcode == 0x8, frames
    code, reason = parse_close(frames[-1].payload)
    return code, reason, closed


def test_invalid_utf8_text_gets_1007(server):
    code, reason, closed = fail_code(server, encode_frame(0x1, b"caf\xc3"))
    assert code == 1007 and "UTF-8" in reason and closed


def test_invalid_utf8_across_fragments_gets_1007(server):
    frames = encode_frame(0x1, b"\xe2\x82", fin=False) + encode_frame(0x0, b"\x28")
    assert fail_code(server, frames)[0] == 1007


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes_get_1002(server, code):
    got, reason, closed = fail_code(server, encode_frame(0x8, close_payload(code)))
    assert got == 1002 and str(code) in reason and closed


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1008, 1011, 3000, 4999])
def test_valid_close_codes_are_echoed(server, code):
    assert fail_code(server, encode_frame(0x8, close_payload(code, "bye")))[0] == code


@pytest.mark.parametrize(
    "frame,why",
    [
        (encode_frame(0x1, b"{}", masked=False), "masked"),
        (encode_frame(0x3, b"x"), "opcode"),
        (encode_frame(0xB, b"x"), "opcode"),
        (bytes([0xC1]) + encode_frame(0x1, b"x")[1:], "reserved"),
        (encode_frame(0x9, b"x", fin=False), "fragmented"),
        (encode_frame(0x0, b"x"), "continuation"),
        (encode_frame(0x1, b"a", fin=False) + encode_frame(0x1, b"b"), "inside a fragmented"),
        (encode_frame(0x8, b"\x03"), "1 byte"),
    ],
    # Named by the reason, not by the frame: a masked frame's key is random,
    # and ids that differ between processes break pytest-xdist's collection.
    ids=lambda value: value if isinstance(value, str) else "frame",
)
def test_protocol_errors_get_1002(server, frame, why):
    code, reason, closed = fail_code(server, frame)
    assert code == 1002 and why in reason and closed


def test_close_reason_not_utf8_gets_1007(server):
    assert fail_code(server, encode_frame(0x8, b"\x03\xe8\xff\xfe"))[0] == 1007


def test_fragmented_text_and_ping_in_between_are_fine(server):
    raw = RawWebSocket(url(server))
    raw.recv_frame()
    msg = json.dumps({"type": "say", "text": "in pieces"}).encode()
    raw.send_raw(
        encode_frame(0x1, msg[:10], fin=False)
        + encode_frame(0x9, b"p")
        + encode_frame(0x0, msg[10:])
    )
    pong = raw.recv_frame()
    assert pong.opcode == 0xA and pong.payload == b"p"
    assert json.loads(raw.recv_frame().payload)["payload"]["text"] == "in pieces"
    raw.close()


def test_extended_lengths_are_read_and_the_limit_counts_every_fragment():
    """The reader's three length encodings (7-bit, 16-bit, 64-bit), and the
    1009 limit applied to a message's fragments together, not one by one."""
    s = ServerThread(room.app_factory(max_message_size=1000), name="rfc-lengths").start()
    try:
        raw = RawWebSocket(url(s))
        raw.recv_frame()
        for text in ("a" * 10, "b" * 300):  # 300 bytes of JSON: the 16-bit length form
            raw.send_text(json.dumps({"type": "say", "text": text[:500]}))
            assert json.loads(raw.recv_frame().payload)["payload"]["text"] == text[:500]
        raw.close()

        raw = RawWebSocket(url(s))
        raw.recv_frame()
        big = b"x" * 70_000  # the 64-bit length form, over the limit: refused before reading it
        assert encode_frame(0x1, big)[1] & 0x7F == 127
        raw.send_raw(encode_frame(0x1, big))
        assert parse_close(raw.recv_until_close()[-1].payload)[0] == 1009
        raw.close()

        raw = RawWebSocket(url(s))
        raw.recv_frame()
        raw.send_raw(encode_frame(0x1, b"y" * 600, fin=False) + encode_frame(0x0, b"y" * 600))
        assert parse_close(raw.recv_until_close()[-1].payload)[0] == 1009
        raw.close()
    finally:
        s.stop()


# -- an independent implementation ---------------------------------------------------
class WsprotoClient:
    def __init__(self, server, target: str = "/ws/room?token=demo") -> None:
        self.conn = WSConnection(ConnectionType.CLIENT)
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        self.sock.sendall(self.conn.send(Request(host=f"127.0.0.1:{server.port}", target=target)))
        self.events: list = []

    def pump(self, until, limit: int = 100):
        for _ in range(limit):
            for event in self.events:
                if until(event):
                    self.events.remove(event)
                    return event
            data = self.sock.recv(65536)
            self.conn.receive_data(data or None)
            self.events += list(self.conn.events())
            if not data:
                break
        return None


def test_wsproto_client_joins_chats_and_closes_cleanly(server):
    c = WsprotoClient(server)
    assert c.pump(lambda e: isinstance(e, AcceptConnection))
    welcome = c.pump(lambda e: isinstance(e, TextMessage))
    assert json.loads(welcome.data)["type"] == "room.welcome"
    c.sock.sendall(c.conn.send(Message(data=json.dumps({"type": "say", "text": "from wsproto"}))))
    event = c.pump(lambda e: isinstance(e, TextMessage))
    assert json.loads(event.data)["payload"]["text"] == "from wsproto"
    c.sock.sendall(c.conn.send(CloseConnection(code=1000, reason="done")))
    closing = c.pump(lambda e: isinstance(e, CloseConnection))
    assert closing.code == 1000
    c.sock.close()


def test_wsproto_sees_1007_for_bad_utf8(server):
    c = WsprotoClient(server)
    c.pump(lambda e: isinstance(e, AcceptConnection))
    c.pump(lambda e: isinstance(e, TextMessage))
    # wsproto will not produce invalid UTF-8, so the frame is made by hand;
    # wsproto parses the server's answer independently.
    c.sock.sendall(encode_frame(0x1, b"\xff"))
    closing = c.pump(lambda e: isinstance(e, CloseConnection))
    assert closing is not None and closing.code == 1007
    c.sock.close()


def test_wsproto_sees_403_for_forged_origin(server):
    from wsproto.events import RejectConnection

    conn = WSConnection(ConnectionType.CLIENT)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(
        conn.send(
            Request(
                host=f"127.0.0.1:{server.port}",
                target="/ws/room?token=demo",
                extra_headers=[(b"Origin", b"https://evil.example")],
            )
        )
    )
    conn.receive_data(sock.recv(65536))
    events = list(conn.events())
    assert isinstance(events[0], RejectConnection) and events[0].status_code == 403
    sock.close()
