"""SSE on the wire: the server's bytes against the spec (WHATWG HTML 9.2),
parsed by an independent spec parser and by sseclient-py; resume, bad
Last-Event-ID values, heartbeats, 204, auth and masking."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
import sseclient
from sse_spec_parser import SpecParser, parse

from lab.wire.http import WireView, raw_request
from servers import sse, sse_auth, sse_format, streaming
from servers.cursor import RESYNC, resync_notice
from servers.runtime import ServerThread

APP = sse.app_with(streaming.routes)  # server.state: the SSEFeed


@pytest.fixture
def server():
    with ServerThread(APP, name="sse-test") as srv:
        yield srv


def sse_body(server, path="/stream/sse", headers=None, duration=0.3, until=None):
    view = WireView(raw_request(server.url, path, headers, duration=duration, until=until))
    return view, view.body


# -- the spec parser itself (so the tests below rest on something checked) ----


def test_spec_parser_follows_the_spec_examples():
    # WHATWG 9.2.6 examples: multi-line data joined with LF.
    p = parse(b"data: YHOO\ndata: +2\ndata: 10\n\n")
    assert [e.data for e in p.events] == ["YHOO\n+2\n10"]
    # "data" without a colon is an empty value; a final unterminated block is dropped.
    p = parse(b"data\n\ndata\ndata\n\ndata:")
    assert [e.data for e in p.events] == ["", "\n"]
    # One space after the colon is stripped, not two.
    p = parse(b"data:test\n\ndata: test\n\ndata:  test\n\n")
    assert [e.data for e in p.events] == ["test", "test", " test"]


def test_spec_parser_line_endings_bom_ids_and_retry():
    for sep in (b"\n", b"\r", b"\r\n"):
        raw = b"\xef\xbb\xbfid: 7" + sep + b"event: a" + sep + b"data: x" + sep + sep
        for size in (None, 1):  # whole, and one byte at a time (split CRLF)
            p = parse(raw + b"data: y" + sep + sep, chunk_size=size)
            assert [(e.type, e.data, e.last_event_id) for e in p.events] == [
                ("a", "x", "7"),
                ("message", "y", "7"),  # the id carries over; the type does not
            ]
    p = parse(b"retry: 1500\n\nretry: 1.5\n\nretry: soon\n\n")
    assert p.reconnection_time == 1500 and p.events == []
    p = parse(b"id: a\0b\ndata: x\n\n: a comment\n\n")
    assert p.events[0].last_event_id == "" and p.comments == [" a comment"]


def test_spec_parser_drops_an_event_cut_off_by_the_end_of_the_stream():
    parser = SpecParser()
    parser.feed(b"id: 1\ndata: complete\n\nid: 2\ndata: cut off")
    parser.close()
    assert [e.data for e in parser.events] == ["complete"]


# -- the server's bytes ----------------------------------------------------------


def test_headers_say_event_stream_no_cache_and_chunked(server):
    view, _ = sse_body(server)
    head = view.head.lower()
    assert head.startswith("http/1.1 200")
    assert "content-type: text/event-stream; charset=utf-8" in head
    assert "cache-control: no-cache" in head
    assert "x-accel-buffering: no" in head
    assert view.chunked


def test_server_bytes_parse_the_same_with_the_spec_parser_and_sseclient(server):
    server.publish("price.tick", {"symbol": "ACME", "price": 1.5})
    server.publish("post.created", {"text": "line one\nline two"})
    server.publish("price.tick", {"symbol": "ACME", "price": 1.75})
    _, body = sse_body(server, "/stream/sse?pretty=1", {"Last-Event-ID": "0"})

    spec = parse(body)
    assert spec.reconnection_time == server.state.retry_ms
    assert [e.type for e in spec.events] == ["price.tick", "post.created", "price.tick"]
    assert [e.last_event_id for e in spec.events] == ["1", "2", "3"]
    # pretty=1 sends each event's JSON over several data: lines
    assert body.count(b"data: ") > 3 * 5
    decoded = [json.loads(e.data) for e in spec.events]
    assert decoded[1]["payload"]["text"] == "line one\nline two"
    assert [d["seq"] for d in decoded] == [1, 2, 3]
    # Split at every byte boundary: same result.
    assert parse(body, chunk_size=1).events == spec.events

    theirs = list(sseclient.SSEClient([body]).events())
    assert [(m.event, m.id, json.loads(m.data)) for m in theirs] == [
        (e.type, e.last_event_id, json.loads(e.data)) for e in spec.events
    ]


def test_format_event_splits_multiline_data_and_rejects_newlines_in_fields():
    text = sse_format.format_event("a\nb\r\nc\rd", event="t", id=5, retry=2000)
    assert text == "id: 5\nevent: t\nretry: 2000\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    (event,) = parse(text.encode()).events
    assert event.data == "a\nb\nc\nd"
    with pytest.raises(ValueError):
        sse_format.format_event("x", id="1\n2")
    with pytest.raises(ValueError):
        sse_format.format_event("x", event="a\rb")
    assert sse_format.format_comment("heartbeat") == ": heartbeat\n\n"


def test_heartbeat_comments_at_the_interval_asked_for(server):
    _, body = sse_body(server, "/stream/sse?heartbeat=0.05", duration=0.6)
    parser = parse(body)
    assert parser.comments.count(" heartbeat") >= 2
    assert parser.events == []  # comments dispatch nothing


def test_heartbeat_interval_follows_the_feed_setting(server):
    feed = server.state
    feed.heartbeat_s = 0  # off
    _, body = sse_body(server, duration=0.4)
    assert b"heartbeat" not in body
    feed.heartbeat_s = 0.05
    _, body = sse_body(server, duration=0.5)
    assert body.count(b": heartbeat") >= 2


def test_resume_replays_exactly_the_events_after_last_event_id(server):
    for i in range(5):
        server.publish("tick", {"i": i})
    for headers, path in (
        ({"Last-Event-ID": "2"}, "/stream/sse"),
        ({}, "/stream/sse?lastEventId=2"),  # first request of a browser client
    ):
        _, body = sse_body(server, path, headers)
        assert [e.last_event_id for e in parse(body).events] == ["3", "4", "5"]


def test_without_last_event_id_the_stream_starts_live(server):
    server.publish("old", {})
    _, body = sse_body(server)
    assert parse(body).events == []


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "0x10", "1; drop table"])
def test_last_event_id_that_is_not_a_number_gets_400_with_the_reason(server, bad):
    resp = requests.get(f"{server.url}/stream/sse", headers={"Last-Event-ID": bad}, timeout=5)
    assert resp.status_code == 400
    assert "not a sequence number" in resp.json()["error"]
    # and the server still works
    assert requests.get(f"{server.url}/stream/sse?limit=0", timeout=5, stream=True).ok


def test_last_event_id_from_the_future_gets_400_with_the_reason(server):
    # servers.cursor's one rule: an id this server never handed out is a client bug.
    server.publish("tick", {})
    resp = requests.get(f"{server.url}/stream/sse", headers={"Last-Event-ID": "99"}, timeout=5)
    assert resp.status_code == 400
    assert "future" in resp.json()["error"] and "last is 1" in resp.json()["error"]


def test_last_event_id_older_than_the_buffer_gets_a_resync_then_what_is_left(server):
    capacity = server.hub.log.capacity
    for i in range(capacity + 5):
        server.publish("tick", {"i": i})
    _, body = sse_body(server, headers={"Last-Event-ID": "1"}, duration=1.0)
    events = parse(body).events
    assert events[0].type == RESYNC
    notice = json.loads(events[0].data)
    assert notice == resync_notice(1, capacity + 5, notice["reason"], missed=(2, 5))
    assert "no longer holds events 2..5" in notice["reason"]
    assert [int(e.last_event_id) for e in events[1:4]] == [6, 7, 8]


@pytest.mark.parametrize("query", ["heartbeat=fast", "heartbeat=-1", "limit=x"])
def test_bad_query_parameters_get_400(server, query):
    resp = requests.get(f"{server.url}/stream/sse?{query}", timeout=5)
    assert resp.status_code == 400 and resp.json()["error"]


def test_closed_feed_answers_204_and_ends_open_streams(server):
    resp = requests.get(f"{server.url}/stream/sse", stream=True, timeout=5)
    assert resp.status_code == 200
    assert server.call(sse.close_feed, server.state) == 1
    assert resp.raw.read() is not None  # the open stream ended
    resp.close()
    again = requests.get(f"{server.url}/stream/sse", timeout=5)
    assert again.status_code == 204 and again.content == b""
    assert "event-stream" not in again.headers.get("Content-Type", "")
    server.state.closed = False  # reopened: streams again
    with requests.get(f"{server.url}/stream/sse", stream=True, timeout=5) as reopened:
        assert reopened.status_code == 200


def test_limit_ends_the_stream_cleanly(server):
    def publish_later():
        time.sleep(0.2)
        for i in range(3):
            server.publish("tick", {"i": i})

    threading.Thread(target=publish_later, daemon=True).start()
    view = WireView(raw_request(server.url, "/stream/sse?limit=3", duration=5, until=b"0\r\n\r\n"))
    assert view.chunks[-1] == (b"0", b"")
    assert len(parse(view.body).events) == 3


# -- security ----------------------------------------------------------------------


def test_private_stream_needs_a_valid_short_lived_token(server):
    url = f"{server.url}/stream/sse/private"
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 401 and "no token" in missing.json()["error"]

    server.state.password = "open sesame"
    session = requests.Session()
    issued = session.post(
        f"{server.url}/stream/token", data={"user": "ada", "password": "open sesame"}, timeout=5
    )
    token = issued.json()["token"]
    assert "HttpOnly" in issued.headers["Set-Cookie"]
    with session.get(url, stream=True, timeout=5) as by_cookie:  # the cookie rides along
        assert by_cookie.status_code == 200
    with requests.get(url, params={"token": token}, stream=True, timeout=5) as by_url:
        assert by_url.status_code == 200

    auth = server.state.auth
    expired = auth.issue("ada", ttl_s=-1)
    tampered = token.replace("ada", "eve", 1)
    for bad, reason in ((expired, "expired"), (tampered, "signature"), ("x.y", "malformed")):
        resp = requests.get(url, params={"token": bad}, timeout=5)
        assert resp.status_code == 401 and reason in resp.json()["error"]


def test_sensitive_fields_are_masked_on_the_wire(server):
    server.publish("payment.received", {"card_number": "4111111111111111", "amount": 12})
    _, body = sse_body(server, headers={"Last-Event-ID": "0"})
    assert b"4111111111111111" not in body
    (event,) = parse(body).events
    payload = json.loads(event.data)["payload"]
    assert payload == {"card_number": "••••1111", "amount": 12}


def test_stream_auth_tokens_round_trip_and_validate_input():
    auth = sse_auth.StreamAuth(secret=b"k" * 32, ttl_s=30)
    token = auth.issue("ada", now=1000)
    assert auth.verify(token, now=1010) == "ada"
    with pytest.raises(PermissionError, match="expired"):
        auth.verify(token, now=1031)
    with pytest.raises(ValueError):
        auth.issue("a.b")
    assert sse_format.mask("4111111111111111") == "••••1111" and sse_format.mask("12") == "••••"
