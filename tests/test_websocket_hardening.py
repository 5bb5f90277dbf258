"""The room against hostile input (issue 15, items 3 and 6): every bad
message is answered with a reason (``room.error`` on the socket, a 4xx over
HTTP), the connection and the server keep working, and ``POST /room/say``
goes through exactly the checks a WebSocket "say" does."""

from __future__ import annotations

import json
import socket
from types import GeneratorType

import psutil
import pytest
import requests

from lab.clients.websocket import RoomClient
from lab.recorder import ArrivalRecorder
from lab.wire.websocket import RawWebSocket, parse_close
from servers import websocket as room
from servers.events import EncodedCache, Event
from servers.hub import LOG_MAX_BYTES
from servers.runtime import ServerThread

AUTH = {"Authorization": "Bearer demo"}
DEEP = "[" * 2000 + "]" * 2000  # 4,000 bytes: under the 4 KiB message limit


def start(**options):
    return ServerThread(room.app_factory(**options), name="test-room-hardening").start()


@pytest.fixture
def server():
    s = start()
    yield s
    s.stop()


def joined(server) -> RawWebSocket:
    raw = RawWebSocket(f"{server.ws_url}/ws/room?token=demo")
    assert json.loads(raw.recv_frame().payload)["type"] == "room.welcome"
    return raw


def next_json(raw: RawWebSocket, timeout: float = 5.0) -> dict:
    frame = raw.recv_frame(timeout)
    assert frame is not None, "the server cut the connection"
    assert frame.opcode == 0x1, (frame.opcode, parse_close(frame.payload))
    return json.loads(frame.payload)


def say_over_http(server, body, **kwargs) -> requests.Response:
    data = body if isinstance(body, (str, bytes, GeneratorType)) else json.dumps(body)
    return requests.post(f"{server.url}/room/say", data=data, headers=AUTH, timeout=10, **kwargs)


def still_works(server, raw: RawWebSocket) -> None:
    raw.send_text('{"type": "say", "text": "still here"}')
    assert next_json(raw)["payload"]["text"] == "still here"
    assert say_over_http(server, {"text": "and over HTTP"}).status_code == 200


# -- item 6: messages that used to cut the connection, or were misread --------------
@pytest.mark.parametrize(
    "sent, fragment",
    [
        ('{"type": "resume", "after": Infinity}', "whole number"),  # was OverflowError
        ('{"type": "resume", "after": NaN}', "whole number"),
        ('{"type": "resume", "after": 0.9}', "whole number"),  # was read as 0
        ('{"type": "resume", "after": true}', "whole number"),  # was read as 1
        ('{"type": "resume", "after": 1e400}', "whole number"),
        ('{"type": "resume", "after": 10000000000000000000}', "digits"),
        ('{"type": "resume"}', "whole number"),
        (DEEP, "nested too deeply"),  # was RecursionError
        ('{"type": ' + DEEP + "}", "nested too deeply"),
        ('{"type": "say", "text": "hi", "ref": ' + "[" * 1500 + "]" * 1500 + "}", "nested"),
        ('{"type": "say", "text": "hi", "ref": {"a": 1}}', '"ref" must be a string'),
        ('{"type": "say", "text": "\\ud800"}', "not valid Unicode"),  # no UTF-8 form
        ('{"type": "say", "text": "hi", "ref": "\\udfff"}', "not valid Unicode"),
    ],
)
def test_bad_room_messages_get_room_error_and_the_socket_stays(server, sent, fragment):
    raw = joined(server)
    raw.send_text(sent)
    error = next_json(raw, timeout=2)
    assert error["type"] == "room.error" and fragment in error["error"], error
    still_works(server, raw)
    assert room.room_stats(server)["closed_with"] == {}


def test_resume_from_the_query_string_is_strict_too(server):
    server.publish("chat.message", {"text": "one"})
    for bad in ("%C2%B2", "%D9%A3", "%2B1", "0.9", "-1", "9" * 5000):  # ², ٣, +1
        raw = RawWebSocket(f"{server.ws_url}/ws/room?token=demo&after={bad}")
        assert next_json(raw)["type"] == "room.welcome"
        error = next_json(raw, timeout=2)
        assert error["type"] == "room.error" and "cannot resume" in error["error"], (bad, error)
        raw.close()
    raw = RawWebSocket(f"{server.ws_url}/ws/room?token=demo&after=0")
    assert next_json(raw)["type"] == "room.welcome"
    assert next_json(raw)["payload"]["text"] == "one"


def test_an_after_that_is_not_utf8_gets_room_error_not_a_cut_socket(server):
    raw = RawWebSocket(f"{server.ws_url}/ws/room?token=demo&after=%FF")
    assert next_json(raw)["type"] == "room.welcome"
    error = next_json(raw, timeout=2)  # was: the socket cut without a close frame
    assert error["type"] == "room.error" and "cannot resume" in error["error"]
    still_works(server, raw)


def test_an_unexpected_failure_closes_with_1011_and_a_close_frame(server, monkeypatch):
    def broken(data, options, sender):
        raise KeyError("a bug, not bad input")

    monkeypatch.setattr(room.guards, "validate_say", broken)
    raw = joined(server)
    raw.send_text('{"type": "say", "text": "hi"}')
    frames = raw.recv_until_close(timeout=5)
    assert frames and frames[-1].opcode == 0x8
    assert parse_close(frames[-1].payload)[0] == 1011
    monkeypatch.undo()
    still_works(server, joined(server))


# -- item 3: POST /room/say applies the room's checks ------------------------------
BAD_SAYS = [
    ({"text": {"a": 1}}, 400, "non-empty"),
    ({"text": ""}, 400, "non-empty"),
    ({"text": "  "}, 400, "non-empty"),
    ({}, 400, "non-empty"),
    ({"text": "x" * 501}, 400, "longer than 500"),
    ({"text": "hi", "ref": {"deep": [1]}}, 400, '"ref" must be a string'),
    ({"text": "\ud800"}, 400, "not valid Unicode"),
    ({"type": "resume", "after": 1}, 400, '"say" message'),
    ([1, 2], 400, "expected an object"),
    ("not json", 400, "not JSON"),
    (DEEP, 400, "nested too deeply"),
    ({"text": "x" * 1_000_000}, 413, "larger than 4096 bytes"),
]


@pytest.mark.parametrize("body, status, fragment", BAD_SAYS)
def test_bad_http_says_get_4xx_with_the_reason(server, body, status, fragment):
    answer = say_over_http(server, body)
    assert answer.status_code == status and fragment in answer.json()["error"], answer.text
    assert server.hub.log.last_seq == 0  # nothing was published
    assert say_over_http(server, {"text": "good"}).status_code == 200


def test_http_and_websocket_refuse_a_say_with_the_same_reason(server):
    raw = joined(server)
    for body, status, _ in BAD_SAYS:
        if status != 400 or not isinstance(body, dict) or "type" in body:
            continue
        raw.send_text(json.dumps({"type": "say", **body}))
        over_ws = next_json(raw)["error"]
        assert say_over_http(server, body).json()["error"] == over_ws


def test_chunked_body_over_the_limit_is_refused_without_keeping_it(server):
    def body():
        yield b'{"text": "'
        for _ in range(100):
            yield b"x" * 10_000
        yield b'"}'

    answer = say_over_http(server, body())
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]
    assert server.hub.log.last_seq == 0


def test_a_body_declared_far_too_big_is_refused_before_it_is_read(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /room/say HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo\r\n"
            b"Content-Length: 30000000\r\n\r\n"
        )
        answer = b""
        while b"}" not in answer:  # the JSON reason, without sending any body
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"larger than 4096 bytes" in answer


def test_http_say_has_a_rate_limit_per_user():
    s = start(rate=2, burst=3, tokens={"t-ada": "ada", "t-bob": "bob"})
    try:
        post = lambda token: requests.post(  # noqa: E731
            f"{s.url}/room/say",
            json={"text": "hi"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        codes = [post("t-ada").status_code for _ in range(6)]
        assert codes[:3] == [200] * 3 and 429 in codes[3:]
        refused = post("t-ada")
        assert refused.status_code == 429 and "rate limit" in refused.json()["error"]
        assert refused.headers["Retry-After"] == "1"
        assert post("t-bob").status_code == 200  # another user has their own bucket
    finally:
        s.stop()


def test_fifty_one_megabyte_says_do_not_grow_memory():
    s = start(rate=1e6, burst=10**6)
    try:
        text = "x" * 1_000_000
        process = psutil.Process()
        with requests.Session() as session:
            send = lambda: session.post(  # noqa: E731
                f"{s.url}/room/say", json={"text": text}, headers=AUTH, timeout=10
            )
            send()  # warm up: connection, buffers
            before = process.memory_info().rss
            codes = {send().status_code for _ in range(50)}
            grown = process.memory_info().rss - before
        assert codes == {413}
        assert s.hub.log.last_seq == 0
        assert grown < 20 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB"
    finally:
        s.stop()


# -- the log is bounded in bytes ---------------------------------------------------
def test_the_room_log_is_bounded_in_bytes_and_a_resume_gets_a_resync(server):
    # Counted in the log, not as RSS: the allocator keeps freed megabytes.
    for i in range(50):
        server.publish("chat.message", {"n": i, "text": str(i % 10) * 1_000_000})
    assert 0 < server.hub.log.bytes <= LOG_MAX_BYTES and len(server.hub.log) < 10
    raw = RawWebSocket(f"{server.ws_url}/ws/room?token=demo&after=1")
    assert next_json(raw)["type"] == "room.welcome"
    notice = next_json(raw)
    assert notice["type"] == "resync" and notice["missed"][0] == 2


def test_big_events_broadcast_to_members_do_not_pile_up_in_the_frame_cache():
    # The room keeps each event's frame to send it once-built to every member;
    # that cache held 4,096 frames (and their events) whatever their size.
    s = start()
    member = RoomClient(f"{s.ws_url}/ws/room", recorder=ArrivalRecorder("member", 1))
    try:
        member.start()
        assert member.wait_connected()
        for i in range(20):  # distinct payloads, as 20 different messages would be
            last = s.publish("chat.message", {"n": i, "text": str(i % 10) * 1_000_000})
        assert member.recorder.wait_for(last.seq, timeout=30)
        assert member.recorder.lost(last.seq) == 0
        frames = s.call(lambda: s.state.frames)
        held = s.call(lambda: sum(len(frame) for _, frame in frames._items.values()))
        assert held == frames.bytes <= frames.max_bytes == 8 * 2**20
    finally:
        member.stop()
        s.stop()


def test_encoded_cache_is_bounded_in_bytes_and_still_encodes_once():
    cache = EncodedCache(size=100, max_bytes=10_000)
    events = [Event(i, "t", {"pad": "x" * 3000}) for i in range(10)]
    calls = []

    def encode(event):
        calls.append(event.seq)
        return event.to_json().encode()

    for event in events:
        assert cache.get(event, "f", encode) == cache.get(event, "f", encode)
    assert calls == list(range(10))  # once each, however many readers
    assert cache.bytes <= 10_000 and len(cache._items) == 3
    cache.get(events[0], "f", encode)  # fell out: encoded again, not lost
    assert calls[-1] == 0
