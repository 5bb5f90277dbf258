"""The reconnecting SSE client: resume with Last-Event-ID after a cut
connection (lost = 0, duplicated = 0), retry:, 204, the heartbeat watchdog,
resync notices, and the sseclient-py quirks it works around."""

from __future__ import annotations

import pytest
import sseclient

from lab.clients import NDJSONStreamClient
from lab.clients.sse import RawTap, ReconnectingSSEClient, TruncatedStream, plan_reconnect
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from servers import sse, streaming
from servers.cursor import RESYNC
from servers.runtime import ServerThread

APP = sse.app_with(streaming.routes)  # server.state: the SSEFeed


@pytest.fixture
def server():
    with ServerThread(APP, name="sse-client-test") as srv:
        srv.state.retry_ms = 50  # reconnect quickly in tests
        yield srv


@pytest.fixture
def client(server):
    made = []

    def make(**kwargs):
        kwargs.setdefault("last_event_id", server.hub.log.last_seq)
        c = ReconnectingSSEClient(server.url, **kwargs)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.stop()


def test_resume_after_the_connection_is_cut_mid_feed(server, client):
    c = client(recorder=ArrivalRecorder("sse", first_seq=1))
    assert c.wait_connected()
    for i in range(20):
        server.publish("tick", {"i": i})
    assert c.recorder.wait_for(20, timeout=10)
    for round_ in range(3):
        c.drop_connection()
        # published while the client is away or reconnecting
        for i in range(10):
            server.publish("tick", {"round": round_, "i": i})
    last = server.hub.log.last_seq
    assert c.recorder.wait_for(last, timeout=10)
    assert c.recorder.lost(last) == 0 and c.recorder.duplicates == 0
    assert c.connections >= 2
    # every reconnection sent the id of the last event it had
    assert all(sent is not None and sent.isdigit() for sent in c.sent_last_event_ids)


def test_ndjson_and_sse_clients_see_the_same_events_without_loss(server, client):
    sse_client = client(recorder=ArrivalRecorder("sse", first_seq=1))
    nd = NDJSONStreamClient(server.url, recorder=ArrivalRecorder("ndjson", first_seq=1)).start()
    try:
        assert sse_client.wait_connected()
        assert wait_until(lambda: nd.connections == 1, timeout=5)
        for i in range(50):
            server.publish("tick", {"i": i})
        for c in (sse_client, nd):
            assert c.recorder.wait_for(50, timeout=10)
            assert c.recorder.duplicates == 0
    finally:
        nd.stop()


def test_client_honours_retry_from_the_server(server, client):
    server.state.retry_ms = 123
    c = client(retry_ms=5000)
    assert c.wait_connected()
    assert wait_until(lambda: c.retry_ms == 123, timeout=5)


def test_client_obeys_204_and_stops_reconnecting(server, client):
    c = client()
    assert c.wait_connected()
    server.call(sse.close_feed, server.state)
    assert wait_until(lambda: not c.running, timeout=5)
    assert "204" in c.stopped_by_server
    made = c.requests_made
    server.state.closed = False
    server.publish("tick", {})
    assert not wait_until(lambda: c.requests_made > made, timeout=0.5)


def test_client_stops_on_other_non_200_answers(server, client):
    c = client(path="/stream/sse/private")  # no token: 401
    assert wait_until(lambda: not c.running, timeout=5)
    assert "401" in c.stopped_by_server and c.requests_made == 1


def test_client_starting_with_a_garbage_id_is_told_400_and_stops(server, client):
    c = client(last_event_id="not-a-number")
    assert wait_until(lambda: not c.running, timeout=5)
    assert "400" in c.stopped_by_server


def test_watchdog_reconnects_when_no_heartbeat_arrives(server, client):
    server.state.heartbeat_s = 0  # a silent server (or a dead link)
    c = client(watchdog_s=0.3)
    assert wait_until(lambda: c.watchdog_reconnects >= 1, timeout=10)
    assert wait_until(lambda: c.connections >= 2, timeout=10)
    # ... and still receives events after the reconnection
    event = server.publish("tick", {})
    assert c.recorder.wait_for(event.seq, timeout=10)


def test_heartbeats_keep_the_watchdog_quiet(server, client):
    server.state.heartbeat_s = 0.05
    c = client(watchdog_s=2.0)
    assert c.wait_connected()
    assert wait_until(lambda: c.live_heartbeats >= 5, timeout=10)
    assert c.watchdog_reconnects == 0 and c.connections == 1


def test_client_away_too_long_gets_a_resync_notice_and_continues(server, client):
    seen = []
    c = client(last_event_id=0, on_notice=seen.append)
    assert c.wait_connected()
    c.stop()
    for i in range(server.hub.log.capacity + 10):
        server.publish("tick", {"i": i})
    c.start()
    assert wait_until(lambda: c.notices, timeout=10)
    notice = c.notices[0]
    assert notice["type"] == RESYNC and notice["missed"] == [1, 10] and seen == [notice]
    assert wait_until(lambda: c.recorder.highest_seq == server.hub.log.last_seq, timeout=10)
    assert c.recorder.missing() == list(range(1, 11))  # the gap is real, and was announced
    assert c.recorder.duplicates == 0


def test_plan_reconnect_follows_the_spec():
    assert plan_reconnect(204, None, "5", 1000).stop
    assert plan_reconnect(500, "text/event-stream", "5", 1000).stop
    assert plan_reconnect(200, "application/json", "5", 1000).stop
    go = plan_reconnect(200, "text/event-stream; charset=utf-8", "5", 1500)
    assert not go.stop and go.delay_s == 1.5 and go.headers["Last-Event-ID"] == "5"
    fresh = plan_reconnect(None, None, None, 1000)
    assert not fresh.stop and "Last-Event-ID" not in fresh.headers


# -- sseclient-py's quirks, and what RawTap does about them --------------------------


def test_sseclient_dispatches_a_cut_off_event_and_rawtap_prevents_it():
    cut = [b'id: 1\ndata: {"complete": true}\n\n', b'id: 2\ndata: {"cut']
    # the quirk: sseclient-py yields the half event at the end of the stream
    assert [m.data for m in sseclient.SSEClient(cut).events()][-1] == '{"cut'
    # the fix: RawTap ends its input with an error, so the half event never dispatches
    got = []
    with pytest.raises(TruncatedStream):
        for message in sseclient.SSEClient(RawTap(cut, lambda ms: None)).events():
            got.append(message.data)
    assert got == ['{"complete": true}']


def test_sseclient_drops_retry_only_blocks_and_rawtap_reads_them():
    stream = [b"retry: 2500\n\n", b": heartbeat\n\n", b"data: x\n\n"]
    assert [m.retry for m in sseclient.SSEClient(stream).events()] == [None]
    retries = []
    tap = RawTap(stream, retries.append)
    assert [m.data for m in sseclient.SSEClient(tap).events()] == ["x"]
    assert retries == [2500] and tap.heartbeats == 1


def test_sseclient_does_not_carry_the_id_over():
    stream = [b"id: 9\ndata: a\n\ndata: b\n\n"]
    assert [m.id for m in sseclient.SSEClient(stream).events()] == ["9", None]
