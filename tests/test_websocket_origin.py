"""The room's Origin policy: an exact allowlist, right behind Jupyter's proxy,
never fooled by ``Host``.

Each handshake here is written byte by byte, so the test controls exactly the
headers a browser, a proxy or an attacker would send (``Host`` included,
which client libraries set themselves).
"""

from __future__ import annotations

import base64
import os
import socket
import threading

import pytest

from servers import websocket as room
from servers.runtime import ServerThread

PAGE = "https://127.0.0.1:8888"  # an https JupyterLab page, as Binder serves one


def handshake(port: int, headers: dict[str, str], path: str = "/ws/room?token=demo") -> int:
    """The status code the room answers a WebSocket handshake with these headers."""
    lines = [
        f"GET {path} HTTP/1.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


@pytest.fixture
def server():
    s = ServerThread(
        room.app_factory(allowed_origins=["https://chat.example", PAGE]), name="test-origin"
    ).start()
    yield s
    s.stop()


def test_an_https_page_through_jupyter_server_proxy_is_let_in(server):
    # What jupyter-server-proxy 4.6 sends on for an https page: the browser's
    # Origin, Host and cookies, over plain http, and no X-Forwarded-* headers.
    proxied = {"Host": "127.0.0.1:8888", "Origin": PAGE, "Cookie": "_xsrf=abc"}
    assert handshake(server.port, proxied) == 101


def test_the_same_page_is_refused_until_its_origin_is_on_the_list():
    allowlist = room.OriginAllowlist()  # the kernel keeps it and may add to it later
    s = ServerThread(room.app_factory(allowed_origins=allowlist), name="test-origin-late").start()
    try:
        proxied = {"Host": "127.0.0.1:8888", "Origin": PAGE}
        assert handshake(s.port, proxied) == 403
        # The kernel adds the page's origin from its own thread while the server runs.
        adder = threading.Thread(target=allowlist.add, args=(PAGE,))
        adder.start()
        adder.join()
        assert handshake(s.port, proxied) == 101
    finally:
        s.stop()


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{port}",  # DNS rebinding straight to this server's port
        "evil.example:8888",  # or any other port
        "evil.example",
        "127.0.0.1:9999",  # a loopback name, but neither this server nor the page
    ],
)
def test_a_forged_host_never_turns_a_foreign_origin_into_an_allowed_one(server, host):
    host = host.format(port=server.port)
    forged = {"Host": host, "Origin": f"http://{host}"}
    assert handshake(server.port, forged) == 403
    # Nor does a proxy's forwarded scheme and host, which a browser cannot set.
    forwarded = {
        "Host": host,
        "Origin": f"https://{host}",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": host,
        "Sec-Fetch-Site": "same-origin",
    }
    assert handshake(server.port, forwarded) == 403


def test_no_origin_is_a_non_browser_client_and_the_token_decides(server):
    host = {"Host": f"127.0.0.1:{server.port}"}
    assert handshake(server.port, host) == 101
    assert handshake(server.port, host, path="/ws/room?token=wrong") == 403
    assert handshake(server.port, host, path="/ws/room") == 401


def test_this_servers_own_origin_comes_from_its_socket_not_from_host(server):
    own = f"http://127.0.0.1:{server.port}"  # websocket-client sends this by default
    assert handshake(server.port, {"Host": f"127.0.0.1:{server.port}", "Origin": own}) == 101
    assert handshake(server.port, {"Host": "evil.example", "Origin": own}) == 101
    assert (
        handshake(
            server.port, {"Host": f"127.0.0.1:{server.port}", "Origin": "http://evil.example"}
        )
        == 403
    )


@pytest.mark.parametrize(
    "origin",
    ["https://chat.example/", "https://chat.example/path", "chat.example", "https://", "null",
     "https://user@chat.example", "ftp://chat.example"],
)  # fmt: skip
def test_an_allowlist_holds_origins_only(origin):
    with pytest.raises(ValueError):
        room.OriginAllowlist([origin])


def test_allowlist_membership_is_exact():
    allowed = room.OriginAllowlist(["https://chat.example"])
    assert "https://chat.example" in allowed
    for near in (
        "http://chat.example",
        "https://chat.example:443",
        "https://chat.example.evil.net",
    ):
        assert near not in allowed
