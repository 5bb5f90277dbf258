"""lab.clients.browser, kernel side: construction, paths, and the page-derived URL rule.

The browser behaviour itself (EventSource live, fetch buffered by the proxy,
WebSocket push and echo) is proved in Chromium by tests/e2e/test_browser_clients_in_lab.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.clients import browser
from lab.clients.browser import (
    BrowserEventSource,
    BrowserFetchStream,
    BrowserWebSocket,
    kernel_side_proxy_url,
    proxy_path,
)
from servers.websocket import OriginAllowlist


def test_each_client_has_its_kind_and_proxy_path() -> None:
    es = BrowserEventSource(8123, "/stream/sse", event_types=["order.created"])
    ws = BrowserWebSocket(8123)
    fetch = BrowserFetchStream(8123, "stream/ndjson?after=3")
    try:
        assert (es.kind, ws.kind, fetch.kind) == ("eventsource", "websocket", "fetch")
        assert es.proxy_path == "proxy/8123/stream/sse"
        assert ws.proxy_path == "proxy/8123/ws"
        assert fetch.proxy_path == "proxy/8123/stream/ndjson?after=3"
        assert es.event_types == ["order.created"]
        # Nothing has been received until a browser renders it (as under nbval).
        assert (es.received, es.status, es.arrivals) == (0, "not rendered", [])
        assert "proxy/8123/stream/sse" in es.title
    finally:
        for client in (es, ws, fetch):
            client.close()


@pytest.mark.parametrize("port", [0, -1, 70000])
def test_bad_port_is_refused(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        BrowserEventSource(port)


def test_proxy_paths() -> None:
    assert proxy_path(9000, "/a/b") == "proxy/9000/a/b"
    assert kernel_side_proxy_url(9000, "ws", base_url="/user/abc") == "/user/abc/proxy/9000/ws"
    assert kernel_side_proxy_url(9000, "ws", base_url="/") == "/proxy/9000/ws"


def test_kernel_side_url_follows_jupyterhub_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/learner-1/")
    assert kernel_side_proxy_url(9000, "stream/sse") == "/user/learner-1/proxy/9000/stream/sse"


def test_browser_code_derives_the_url_from_the_page() -> None:
    esm = browser._ESM
    # No host, port or scheme typed in: the page's own location decides.
    assert not re.search(r"(ws|http)s?://(localhost|127\.0\.0\.1)", esm)
    assert 'location.protocol === "https:" ? "wss:" : "ws:"' in esm
    assert "jupyter-config-data" in esm and '"proxy/"' in esm


def test_a_websocket_with_admit_waits_for_the_page_to_report_its_origin():
    allowlist = OriginAllowlist()
    client = BrowserWebSocket(8000, "ws/room?token=t", admit=allowlist.add)
    assert client.origin_admitted is False  # the page waits before connecting
    client.page_origin = "https://hub.example.org"  # what the page reports
    assert client.origin_admitted is True
    assert "https://hub.example.org" in allowlist


def test_a_page_that_reports_no_origin_is_not_admitted():
    allowlist = OriginAllowlist()
    client = BrowserWebSocket(8000, "ws", admit=allowlist.add)
    with pytest.raises(ValueError):
        client.page_origin = "null"  # e.g. a sandboxed frame: not an origin to allow
    assert client.origin_admitted is False and list(allowlist) == []


def test_a_websocket_without_admit_connects_at_once():
    assert BrowserWebSocket(8000, "ws").origin_admitted is True


def test_the_browser_code_is_loaded_from_its_js_file() -> None:
    js = Path(browser.__file__).with_name("browser.js")
    assert browser._ESM == js.read_text(encoding="utf-8")
    assert "export default { initialize, render }" in browser._ESM
