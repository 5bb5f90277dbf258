"""The buffering trap: chunked arrives live; a close-delimited body and a
buffering proxy hold everything until the end; jupyter-server-proxy streams
only for ``Accept: text/event-stream``. Ordering, not timing: a held
response's first event arrives after the last one was sent."""

from __future__ import annotations

import pytest
import requests

from lab.lessons import http_streaming as lesson
from lab.scale.jupyter_proxy import JupyterServerProxy
from lab.wire.http import WireView, raw_request, split_http
from servers import runtime, sse, streaming, streaming_buffering
from servers.runtime import ServerThread

APP = sse.app_with(streaming.routes)  # server.state: the SSEFeed


N, GAP = 4, 0.2


@pytest.fixture(scope="module")
def server():
    with ServerThread(APP, name="buffering") as srv:
        yield srv


def test_ndjson_stream_is_framed_as_chunks_with_hex_sizes(server):
    server.publish("tick", {"i": 1})
    server.publish("tick", {"i": 2})
    view = WireView(
        raw_request(
            server.url, "/stream/ndjson?after=0&limit=2", duration=3, until=b"\r\n0\r\n\r\n"
        )
    )
    assert view.chunked and "content-length" not in view.head.lower()
    sizes = [int(size, 16) for size, _ in view.chunks]
    assert sizes[-1] == 0  # the terminating chunk: limit=2 ended the response
    assert all(size == len(data) for size, (_, data) in zip(sizes, view.chunks, strict=True))
    assert view.body.count(b"\n") == 2
    assert "class='hex'" in view._repr_html_()


def test_close_delimited_response_has_neither_chunking_nor_length(server):
    server.publish("tick", {})
    raw = raw_request(server.url, "/stream/ndjson-close?after=0&limit=1", duration=3)
    head, body = split_http(raw)
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert b"Connection: close" in head and body.endswith(b"}\n")


def test_close_delimited_bad_cursor_is_a_400(server):
    resp = requests.get(f"{server.url}/stream/ndjson-close?after=oops", timeout=5)
    assert resp.status_code == 400 and "ASCII digits" in resp.json()["error"]


def test_chunked_arrives_live_and_close_delimited_is_held_until_close(server):
    chunked = lesson.measure_arrivals(
        server,
        f"{server.url}/stream/ndjson?after={server.hub.log.last_seq}&limit={N}",
        "ndjson",
        "chunked",
        n=N,
        gap_s=GAP,
    )
    close = lesson.measure_arrivals(
        server,
        f"{server.url}/stream/ndjson-close?after={server.hub.log.last_seq}&limit={N}",
        "ndjson",
        "close-delimited",
        n=N,
        gap_s=GAP,
    )
    for run in (chunked, close):
        assert run.error is None and run.received == N, run
    assert not chunked.held_until_end and chunked.first_arrival_ms < chunked.last_send_ms
    assert close.held_until_end


def test_tiny_proxy_buffers_unless_accept_is_exactly_event_stream(server):
    proxy = runtime.start(
        "test-buffering-proxy", streaming_buffering.buffering_proxy_app(server.url)
    )
    try:
        buffered, live = lesson.proxy_runs(
            server, lambda p: f"{proxy.url}/{p}", n=N, gap_s=GAP, label="tiny"
        )
        assert buffered.received == N and buffered.held_until_end
        assert buffered.response_headers["X-Proxy-Mode"] == "buffered"
        assert live.received == N and not live.held_until_end
        assert live.response_headers["X-Proxy-Mode"] == "progressive"
        # A near miss is still buffered: the rule is an exact string match.
        near = lesson.measure_arrivals(
            server,
            f"{proxy.url}/stream/sse?limit={N}",
            "sse",
            "near miss",
            n=N,
            gap_s=GAP,
            headers={"Accept": "text/event-stream, */*"},
        )
        assert near.held_until_end
    finally:
        proxy.stop()


def test_tiny_proxy_reports_a_dead_upstream_as_502():
    with ServerThread(APP, name="gone") as upstream:
        url = upstream.url
    with ServerThread(
        streaming_buffering.buffering_proxy_app(url), name="proxy-to-nothing"
    ) as proxy:
        for accept in ("*/*", "text/event-stream"):
            resp = requests.get(f"{proxy.url}/stream/sse", headers={"Accept": accept}, timeout=10)
            assert resp.status_code == 502 and "upstream" in resp.json()["error"]


@pytest.mark.skipif(
    not JupyterServerProxy.available(), reason="jupyter-server-proxy is not installed"
)
def test_real_jupyter_server_proxy_buffers_unless_accept_is_event_stream(server):
    with JupyterServerProxy() as jsp:
        buffered, live = lesson.proxy_runs(
            server,
            lambda p: jsp.url_for(server.port, p),
            headers=jsp.headers,
            n=N,
            gap_s=GAP,
            label="jupyter-server-proxy",
        )
    assert buffered.status == 200 and buffered.received == N, buffered
    assert buffered.held_until_end
    assert live.status == 200 and live.received == N and not live.held_until_end
