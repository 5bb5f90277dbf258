"""Disconnects are noticed and cleaned up; slow readers stay bounded."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time

import psutil
import pytest

from lab.waiting import wait_until
from servers import sse, sse_slow, streaming
from servers.runtime import ServerThread

APP = sse.app_with(streaming.routes)  # server.state: the SSEFeed


def open_streams(port: int, path: str, n: int) -> list[socket.socket]:
    """``n`` clients that connect, start a stream, and wait for its first bytes."""
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(sock)
    for sock in socks:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            assert chunk, "server closed a new stream"
            data += chunk
    return socks


def server_state(server: ServerThread) -> dict:
    def snapshot():
        return {
            "subscribers": server.hub.subscriber_count,
            "sse handlers": len(server.state.handlers),
            "tasks": len(asyncio.all_tasks()),
        }

    return server.call(snapshot)


@pytest.mark.parametrize("path", ["/stream/sse?heartbeat=0", "/stream/ndjson"])
def test_a_thousand_clients_connect_and_drop_and_nothing_is_left(path):
    process = psutil.Process()
    with ServerThread(APP, name="cleanup") as server:
        baseline = server_state(server)

        def cycle(batches: int) -> None:
            for _ in range(batches):
                socks = open_streams(server.port, path, 100)
                assert wait_until(lambda: server_state(server)["subscribers"] >= 100, timeout=10)
                server.publish("tick", {})  # some traffic while they are connected
                for sock in socks:
                    sock.close()  # the client goes away without a word
                assert wait_until(lambda: server_state(server)["subscribers"] == 0, timeout=10)

        cycle(2)  # warm-up: allocator pools, Tornado's caches
        gc.collect()
        rss_before = process.memory_info().rss
        cycle(10)  # 1,000 more clients
        assert wait_until(lambda: server_state(server) == baseline, timeout=10), (
            server_state(server),
            baseline,
        )
        gc.collect()
        grown = process.memory_info().rss - rss_before
        assert server.open_connections == 0
        # 1,000 connections that each kept even 10 KiB would add 10 MB.
        assert grown < 8 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"


@contextlib.contextmanager
def overflowed_sse_reader(server, queue_size: int):
    """A raw SSE reader that never reads (a tiny receive buffer fills at
    once), and enough events to overflow its queue: yields its socket once
    the server has counted the overflow."""
    server.state.queue_size = queue_size
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /stream/sse HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: server_state(server)["subscribers"] == 1, timeout=5)
        payload = {"pad": "x" * 2000}
        for _ in range(3000):
            server.publish("big", payload)
        assert wait_until(lambda: server.state.overflows == 1, timeout=10)
        yield sock


def test_slow_sse_reader_is_cut_off_and_its_memory_released():
    with ServerThread(APP, name="slow") as server:
        with overflowed_sse_reader(server, queue_size=20) as sock:
            # The server dropped the subscriber instead of queueing forever.
            assert server_state(server)["subscribers"] == 0
            sock.settimeout(10)
            data = b""
            deadline = time.monotonic() + 10
            while b"client too slow" not in data and time.monotonic() < deadline:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
            assert b"event: resync" in data and b"client too slow" in data
        assert wait_until(lambda: server_state(server)["sse handlers"] == 0, timeout=10)


def test_slow_reader_that_never_drains_is_disconnected(monkeypatch):
    monkeypatch.setattr(sse_slow, "SLOW_READER_GRACE_S", 0.3)
    with ServerThread(APP, name="stuck") as server:
        with overflowed_sse_reader(server, queue_size=10):
            # never reads: after the grace period the server closes the connection
            assert wait_until(lambda: server.open_connections == 0, timeout=10)
            assert server_state(server)["sse handlers"] == 0
