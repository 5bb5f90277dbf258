"""The WebSocket room: handshake guards, room protocol, resume, slow consumers,
pings and TLS. RFC 6455 details are in test_websocket_rfc.py."""

from __future__ import annotations

import json
import random
import ssl
import time

import pytest
import requests
import websocket

from lab.clients.websocket import RoomClient, backoff_delay
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from lab.wire.websocket import HandshakeRefused, RawWebSocket, parse_close
from servers import websocket as room
from servers.cursor import resync_notice
from servers.hub import CallbackSubscription, Subscription
from servers.runtime import ServerThread


def start(**options):
    return ServerThread(room.app_factory(**options), name="test-room").start()


@pytest.fixture
def server():
    s = start(allowed_origins=["https://chat.example"])
    yield s
    s.stop()


def joined(server, **headers) -> RawWebSocket:
    raw = RawWebSocket(f"{server.ws_url}/ws/room?token=demo", headers=headers)
    welcome = json.loads(raw.recv_frame().payload)
    assert welcome["type"] == "room.welcome"
    return raw


def next_json(raw: RawWebSocket) -> dict:
    frame = raw.recv_frame()
    assert frame is not None and frame.opcode == 0x1, frame
    return json.loads(frame.payload)


# -- before the upgrade ------------------------------------------------------------
@pytest.mark.parametrize(
    "query,headers,status",
    [
        ("", {}, 401),
        ("?token=", {}, 401),
        ("?token=wrong", {}, 403),
        ("", {"Authorization": "Bearer wrong"}, 403),
        ("?token=demo", {"Origin": "https://evil.example"}, 403),
        ("?token=demo", {"Origin": "https://chat.example.evil.net"}, 403),
        ("?token=demo", {"Origin": "http://chat.example"}, 403),
        ("?token=demo", {"Origin": "null"}, 403),
    ],
)
def test_refused_before_upgrade_no_socket(server, query, headers, status):
    with pytest.raises(HandshakeRefused) as info:
        RawWebSocket(f"{server.ws_url}/ws/room{query}", headers=headers)
    assert info.value.status == status
    assert b"101" not in info.value.response.split(b"\r\n", 1)[0]
    body = info.value.response.split(b"\r\n\r\n", 1)[1]
    assert json.loads(body)["error"]  # a reason a person can read
    stats = room.room_stats(server)
    assert stats["accepted"] == 0 and stats["refused"][status] == 1


def test_websocket_client_sees_403_for_forged_origin(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(
            f"{server.ws_url}/ws/room?token=demo", origin="https://evil.example", timeout=5
        )
    assert info.value.status_code == 403


def test_allowed_origins_and_bearer_header_are_accepted(server):
    for headers in (
        {"Origin": "https://chat.example"},
        {"Origin": server.url},  # a page served by this server: same origin
        {},  # no Origin: not a browser
    ):
        joined(server, **headers).close()
    ws = websocket.create_connection(
        f"{server.ws_url}/ws/room", header=["Authorization: Bearer demo"], suppress_origin=True
    )
    assert json.loads(ws.recv())["type"] == "room.welcome"
    ws.close()


def test_unknown_room_option_is_a_clear_error():
    with pytest.raises(TypeError, match="unknown room options"):
        room.room_options(max_size=1)


# -- the room protocol -------------------------------------------------------------
def test_say_is_numbered_by_the_hub_and_reaches_everyone(server):
    a, b = joined(server), joined(server)
    a.send_text(json.dumps({"type": "say", "text": "hello", "ref": "m1"}))
    for raw in (a, b):
        event = next_json(raw)
        assert event["seq"] == 1 and event["type"] == "chat.message"
        assert event["payload"] == {"from": "guest", "text": "hello", "ref": "m1"}
    assert server.hub.log.last_seq == 1


@pytest.mark.parametrize(
    "sent,fragment",
    [
        ("not json", "not JSON"),
        ("[1, 2]", "expected an object"),
        ('{"text": "no type"}', "expected an object"),
        ('{"type": "dance"}', "unknown message type"),
        ('{"type": "say"}', "non-empty"),
        ('{"type": "say", "text": 5}', "non-empty"),
        ('{"type": "say", "text": "' + "x" * 600 + '"}', "longer than"),
        ('{"type": "resume", "after": "abc"}', "cannot resume"),
        ('{"type": "resume", "after": -1}', "negative"),
        ('{"type": "resume", "after": 99}', "future"),
    ],
)
def test_malformed_messages_get_an_error_not_a_crash(server, sent, fragment):
    raw = joined(server)
    raw.send_text(sent)
    error = next_json(raw)
    assert error["type"] == "room.error" and fragment in error["error"], error
    # Still connected and still working.
    raw.send_text('{"type": "say", "text": "still here"}')
    assert next_json(raw)["payload"]["text"] == "still here"


def test_binary_frame_gets_an_error(server):
    from lab.wire.websocket import encode_frame

    raw = joined(server)
    raw.send_raw(encode_frame(0x2, b"\x00\x01"))
    assert "binary" in next_json(raw)["error"]


def test_oversized_message_closes_with_1009():
    s = start(max_message_size=100)
    try:
        ws = websocket.create_connection(f"{s.ws_url}/ws/room?token=demo", suppress_origin=True)
        ws.recv()
        ws.send(json.dumps({"type": "say", "text": "x" * 200}))
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert parse_close(data)[0] == 1009
        assert wait_until(lambda: room.room_stats(s)["closed_with"].get(1009) == 1, 5)
    finally:
        s.stop()


def test_rate_limit_closes_with_1008():
    s = start(rate=5, burst=5)
    try:
        raw = joined(s)
        for i in range(8):
            raw.send_text(json.dumps({"type": "say", "text": f"spam {i}"}))
        frames = raw.recv_until_close()
        assert frames[-1].opcode == 0x8
        assert parse_close(frames[-1].payload)[0] == 1008
        events = [json.loads(f.payload) for f in frames if f.opcode == 0x1]
        assert len(events) <= 5  # the burst went through, the rest did not
    finally:
        s.stop()


# -- resume ------------------------------------------------------------------------
def test_resume_with_after_and_with_a_message(server):
    for i in range(5):
        server.publish("chat.message", {"text": f"m{i}"})
    raw = RawWebSocket(f"{server.ws_url}/ws/room?token=demo&after=2")
    assert next_json(raw)["type"] == "room.welcome"
    assert [next_json(raw)["seq"] for _ in range(3)] == [3, 4, 5]
    raw.send_text('{"type": "resume", "after": 3}')
    assert [next_json(raw)["seq"] for _ in range(2)] == [4, 5]
    server.publish("chat.message", {"text": "live"})
    assert next_json(raw)["seq"] == 6


def test_resume_beyond_the_log_says_so():
    s = start()
    try:
        capacity = s.hub.log.capacity
        for i in range(capacity + 10):
            s.publish("chat.message", {"n": i})
        raw = RawWebSocket(f"{s.ws_url}/ws/room?token=demo&after=3")
        assert next_json(raw)["type"] == "room.welcome"
        notice = next_json(raw)
        assert notice["type"] == "resync"
        assert notice["missed"] == [4, 10] and "no longer holds" in notice["reason"]
        # The one resync shape every transport sends (servers.cursor).
        last = s.hub.log.last_seq
        assert notice == resync_notice(3, last, notice["reason"], missed=(4, 10))
        assert next_json(raw)["seq"] == 11  # then everything the log still has
    finally:
        s.stop()


def test_client_resumes_after_dropped_connection_and_server_restart():
    s = start()
    client = RoomClient(f"{s.ws_url}/ws/room", base_delay=0.05, max_delay=0.3, last_seq=0)
    try:
        client.start()
        assert client.wait_connected()
        sent = [s.publish("chat.message", {"n": i}) for i in range(3)]
        assert client.recorder.wait_for(sent[-1].seq)
        client.drop_connection()
        sent += [s.publish("chat.message", {"n": i}) for i in range(3, 8)]
        s.stop()
        assert wait_until(lambda: client.errors, 5)  # it tried while the server was down
        s.start()
        sent += [s.publish("chat.message", {"n": i}) for i in range(8, 10)]
        assert client.recorder.wait_for(sent[-1].seq, timeout=10)
        assert client.recorder.lost(sent[-1].seq) == 0
        assert client.recorder.duplicates == 0
        assert client.connections >= 2  # first join, then at least one resume
    finally:
        client.stop()
        s.stop()


def test_backoff_is_exponential_capped_and_jittered():
    rng = random.Random(1)
    delays = [[backoff_delay(a, 0.1, 2.0, rng) for _ in range(200)] for a in range(8)]
    for attempt, values in enumerate(delays):
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert all(0 <= v <= ceiling for v in values)
        assert max(values) > ceiling * 0.8  # spread over the whole range
        assert len(set(values)) == len(values)  # jitter: no two alike
    assert backoff_delay(50, 0.1, 2.0, rng) <= 2.0


# -- slow consumers, pings ---------------------------------------------------------
def test_slow_consumer_is_closed_and_others_are_unaffected():
    s = start(send_queue=20)
    healthy = RoomClient(f"{s.ws_url}/ws/room", recorder=ArrivalRecorder("ok", 1))
    try:
        healthy.start()
        assert healthy.wait_connected()
        slow = RawWebSocket(f"{s.ws_url}/ws/room?token=demo", rcvbuf=4096)
        big = "x" * 60_000
        sent = []
        for i in range(400):
            sent.append(s.publish("chat.message", {"n": i, "text": big}))
            if room.room_stats(s)["slow_consumers"]:
                break
        assert wait_until(lambda: room.room_stats(s)["slow_consumers"] == 1, 10)
        assert healthy.recorder.wait_for(sent[-1].seq, timeout=20)
        assert healthy.recorder.lost(sent[-1].seq) == 0
        assert healthy.close_codes == []  # never disconnected
        # The slow one is told why and closed with 1013 (try again later),
        # if it reads in time; a reader stuck for longer than close_timeout
        # just has its TCP connection cut (the notice sat behind the backlog).
        frames = slow.recv_until_close(timeout=10)
        texts = [json.loads(f.payload) for f in frames if f.opcode == 0x1]
        if frames and frames[-1].opcode == 0x8:
            assert texts[-1]["type"] == "room.slow_consumer"
            assert parse_close(frames[-1].payload)[0] == 1013
        else:
            assert slow.closed_by_peer(timeout=5)
        assert all("seq" in t for t in texts[1:-1])  # welcome, then only events, in order
        seqs = [t["seq"] for t in texts if "seq" in t]
        assert seqs == sorted(seqs) and len(seqs) < len(sent)
        assert wait_until(lambda: room.room_stats(s)["closed_with"].get(1013) == 1, 5)
        slow.close()
    finally:
        healthy.stop()
        s.stop()


def test_peer_that_stops_answering_pings_is_dropped():
    s = start(ping_interval=0.2, ping_timeout=0.2, close_timeout=0.3)
    try:
        silent = joined(s)  # a raw socket: it never answers a ping
        frames = silent.recv_until_close(timeout=5)
        assert any(f.opcode == 0x9 for f in frames)
        assert frames[-1].opcode == 0x8 and "ping" in parse_close(frames[-1].payload)[1]
        assert silent.closed_by_peer(timeout=5)
        # websocket-client answers pings: it stays.
        ws = websocket.create_connection(f"{s.ws_url}/ws/room?token=demo", suppress_origin=True)
        ws.recv()
        deadline = time.monotonic() + 1.0
        pings = 0
        ws.settimeout(0.3)
        while time.monotonic() < deadline:
            try:
                opcode, _ = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            pings += opcode == websocket.ABNF.OPCODE_PING
            if opcode == websocket.ABNF.OPCODE_PING:
                ws.pong()
        assert pings >= 2 and ws.connected
        ws.close()
    finally:
        s.stop()


# -- TLS ---------------------------------------------------------------------------
def test_tls_room_verifies_with_the_ca_and_fails_loudly_without(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    s = ServerThread(room.make_app, name="tls-room", ssl_options=server_ctx).start()
    try:
        assert s.ws_url.startswith("wss://")
        ws = websocket.create_connection(
            f"{s.ws_url}/ws/room?token=demo", sslopt={"ca_certs": str(ca_file)},
            suppress_origin=True,
        )  # fmt: skip
        assert json.loads(ws.recv())["type"] == "room.welcome"
        ws.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            websocket.create_connection(f"{s.ws_url}/ws/room?token=demo", suppress_origin=True)
    finally:
        s.stop()


# -- one HTTP request per message, and clean stop ---------------------------------
def test_http_say_endpoint(server):
    answer = requests.post(
        f"{server.url}/room/say", json={"text": "hi"}, headers={"Authorization": "Bearer demo"}
    )
    assert answer.status_code == 200 and answer.json()["seq"] == 1
    assert requests.post(f"{server.url}/room/say", json={"text": "hi"}).status_code == 401
    bad = requests.post(
        f"{server.url}/room/say", data="nope", headers={"Authorization": "Bearer demo"}
    )
    assert bad.status_code == 400


def test_stop_with_members_connected_is_prompt():
    s = start()
    clients = [RoomClient(f"{s.ws_url}/ws/room", base_delay=0.05).start() for _ in range(5)]
    try:
        assert all(c.wait_connected() for c in clients)
        t0 = time.monotonic()
        s.stop()
        assert time.monotonic() - t0 < 2.5
    finally:
        for c in clients:
            c.stop()


def test_client_that_joined_live_resumes_from_the_welcome_seq():
    s = start()
    try:
        s.publish("chat.message", {"n": "before"})
        client = RoomClient(f"{s.ws_url}/ws/room", base_delay=0.3, max_delay=0.3)
        client.start()
        assert client.wait_connected() and client.last_seq == 1
        client.recorder.first_seq = 2
        client.drop_connection()
        sent = [s.publish("chat.message", {"n": i}) for i in range(3)]
        assert client.recorder.wait_for(sent[-1].seq, timeout=10)
        assert client.recorder.lost(sent[-1].seq) == 0 and client.recorder.duplicates == 0
        assert 1 not in {a.seq for a in client.recorder.arrivals}  # no history it did not ask for
        client.stop()
    finally:
        s.stop()


def test_a_member_is_a_callback_subscriber_with_no_queue_of_its_own(server):
    # The room writes each event from the hub's fan-out (send_event); a
    # queue per member would be memory per idle connection, never read.
    raw = RawWebSocket(f"{server.ws_url}/ws/room?token=demo")
    assert next_json(raw)["type"] == "room.welcome"
    subs = server.call(lambda: list(server.hub._subscriptions))
    assert len(subs) == 1 and type(subs[0]) is CallbackSubscription
    assert not isinstance(subs[0], Subscription) and not hasattr(subs[0], "queue")
    raw.close()
    assert wait_until(lambda: server.call(lambda: server.hub.subscriber_count) == 0, 5)
