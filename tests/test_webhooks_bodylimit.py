"""An oversized body is refused while it is read, not after it is in memory:
30 MiB sent to the receiver (or the provider's API) must not cost the server
anything like 30 MiB, with a Content-Length or chunked."""

from __future__ import annotations

import socket
import time

import psutil
import pytest
import requests

from servers.runtime import ServerThread
from servers.webhooks import signing
from servers.webhooks.provider import provider_app
from servers.webhooks.receiver import Receiver

MiB = 1024 * 1024
BODY = 30 * MiB
BLOCK = b"x" * (64 * 1024)


def rss() -> int:
    return psutil.Process().memory_info().rss  # the servers run in this process


def send_huge(url: str, path: str, chunked: bool) -> tuple[bytes, int, float]:
    """POST a 30 MiB body from a raw socket, block by block, until done or
    the server closes. Returns (what the server answered, peak RSS growth
    seen while sending, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}"
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{framing}\r\n\r\n".encode()
    base = peak = rss()
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        try:
            for i in range(BODY // len(BLOCK)):  # bounded: 480 blocks
                if chunked:
                    sock.sendall(b"%x\r\n" % len(BLOCK) + BLOCK + b"\r\n")
                else:
                    sock.sendall(BLOCK)
                if i % 8 == 0:
                    peak = max(peak, rss())
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # the server refused and closed: what we want
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, ConnectionAbortedError, TimeoutError):
            pass
    return answer, max(peak, rss()) - base, time.monotonic() - t0


@pytest.fixture()
def receiver_url():
    rec = Receiver(signing.generate_secret())  # the default 64 KiB limit
    with ServerThread(rec.app_factory(), name="wh-limit") as server:
        yield server.url
    rec.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_30_mib_body_is_refused_while_reading(receiver_url, chunked):
    answer, growth, _ = send_huge(receiver_url, "/webhook", chunked)
    # Either the 413 arrived, or the server closed before we could read it
    # (a reset drops it); it must never have read the body into memory.
    if answer:
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"error": "body of' in answer
    assert growth < 8 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB"
    # ...and it still answers (a bad signature, not a crash)
    assert requests.post(f"{receiver_url}/webhook", data=b"{}", timeout=5).status_code == 400


def test_a_body_just_over_the_limit_gets_a_clean_413(receiver_url):
    # A client that sends its whole body before reading (requests does)
    # reads the 413 and its reason, not a reset connection.
    answer = requests.post(f"{receiver_url}/webhook", data=b"x" * 1_000_000, timeout=5)
    assert answer.status_code == 413
    assert answer.json()["error"] == "body of 1000000 bytes exceeds 65536"
    chunked = requests.post(f"{receiver_url}/webhook", data=iter([b"x" * 70_000]), timeout=5)
    assert chunked.status_code == 413 and "exceeds 65536" in chunked.json()["error"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_the_provider_api_refuses_a_30_mib_body_while_reading(tmp_path, chunked):
    with ServerThread(provider_app(tmp_path / "outbox.sqlite3"), name="wh-p-limit") as server:
        answer, growth, _ = send_huge(server.url, "/subscriptions", chunked)
        if answer:
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert growth < 8 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB"
        small = requests.post(f"{server.url}/events", data=b"x" * 100_000, timeout=5)
        assert small.status_code == 413 and "exceeds" in small.json()["error"]
        ok = requests.post(f"{server.url}/events", json={"type": "a.b"}, timeout=5)
        assert ok.status_code == 202


def test_tornado_still_keeps_the_private_finished_flag_bodylimit_reads():
    """``BodyLimitMixin.data_received`` reads Tornado's private
    ``RequestHandler._finished`` (no public accessor says "finish() was
    called"). If Tornado renames it, this fails before the receiver does."""
    import inspect
    from unittest import mock

    from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
    from tornado.web import Application, RequestHandler

    start = RequestStartLine("POST", "/", "HTTP/1.1")
    request = HTTPServerRequest(
        connection=mock.Mock(), start_line=start, headers=HTTPHeaders({"Host": "x"})
    )
    handler = RequestHandler(Application(), request)
    assert handler._finished is False, "tornado.web.RequestHandler._finished changed"
    finish = inspect.getsource(RequestHandler.finish)
    assert "self._finished = True" in finish, "tornado.web.RequestHandler._finished changed"
