"""Notebook 03 in depth's browser-native helpers, kernel side (no browser, as
under nbval): the restart demo, the kernel's 7 streams, the browser clients'
new settings. The page's side is tests/e2e/test_browser_native.py."""

from __future__ import annotations

import pytest

from lab.clients.browser import BrowserEventSource, BrowserStreamLimit
from lab.lessons import http_streaming_browser as native
from servers import runtime, sse, streaming
from servers.common import app_with


@pytest.fixture
def clean():
    yield
    runtime.stop_all()


def test_restart_keeps_port_and_log_and_the_kernel_client_resumes(clean) -> None:
    demo = native.RestartDemo(retry_ms=300)
    try:
        assert not demo.restarted
        demo.restart()
        got = demo.wait()
        assert demo.ports[0] == demo.ports[1] and "stopped" in demo.refused
        assert got["missing"] == [] and got["duplicates"] == 0 and got["connections"] >= 2
        assert ("kernel (python-requests)", str(demo.sent[2].seq)) in demo.seen
        assert [e.seq for e in demo.sent] == list(range(demo.sent[0].seq, demo.sent[0].seq + 6))
        assert "no page" in demo.report()  # no browser here
    finally:
        demo.close()


def test_the_server_holds_seven_streams_from_the_kernel(clean) -> None:
    feed = sse.SSEFeed()
    server = runtime.start("streaming", app_with(streaming.routes, feed.routes, state=feed))
    assert native.python_streams(server, feed, n=7) == 7


def test_browser_client_settings_and_the_limit_probe() -> None:
    es = BrowserEventSource(8123, "answer", track_order=True, close_on=["done"], text_field="text")
    probe = BrowserStreamLimit(8123, streams=7)
    try:
        assert (es.opens, es.gaps, es.duplicates, es.text) == (0, 0, 0, "")
        assert es.close_on == ["done"] and es.track_order
        assert probe.kind == "limit" and probe.proxy_path == "proxy/8123/stream/sse"
        assert (probe.streams, probe.probe, probe.requested) == (7, {}, False)
        probe.run()  # no page: nothing measured, but the request is noted
        assert probe.requested and probe.probe == {}
    finally:
        es.close()
        probe.close()
