"""servers.fanout: a client that never reads cannot make the server's memory
grow, and the clients that do read lose nothing (issue 15, item 1).

Everything runs in this process (server thread, reader threads), so the
process's RSS is the server's memory plus a little for the readers."""

from __future__ import annotations

import base64
import gc
import json
import os
import re
import socket
import struct
import threading
from functools import partial

import psutil
import pytest
import requests

from lab.waiting import wait_until
from servers import fanout, sse_slow
from servers.close_codes import CloseCode
from servers.cursor import RESYNC
from servers.runtime import ServerThread

MiB = 1024 * 1024
ROUNDS = 4
EVENTS_PER_ROUND = 5_000
BATCH = 200  # published between two checks that the fast readers kept up
PAYLOAD = {"pad": "x" * 2000}  # ~2 KB on the wire; one dict shared by every event


@pytest.fixture
def server():
    with ServerThread(fanout.make_app, name="fanout-slow") as s:
        s.call(lambda: s.state.started, timeout=5)
        yield s


def ws_handshake(port: int, query: str = "", tiny_buffer: bool = False) -> socket.socket:
    """A WebSocket connection on a plain socket, past the 101."""
    sock = socket.socket()
    if tiny_buffer:  # a reader that never reads: the kernel's share stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):  # byte by byte: nothing after the head is eaten
        byte = sock.recv(1)
        assert byte, "server closed during the handshake"
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def sse_request(port: int) -> socket.socket:
    """An SSE request on a plain socket that will never be read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    return sock


class FastWSReader(threading.Thread):
    """Reads every frame as it comes and keeps the event seqs in order; ends
    at the close frame (``run()`` may also be called in the test's thread)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.seqs: list[int] = []
        self.other: list[dict] = []  # frames without a seq (notices)
        self.close_code: int | None = None

    def _exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return bytes(data)

    def run(self) -> None:
        try:
            while True:
                b0, b1 = self._exactly(2)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", self._exactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", self._exactly(8))
                data = self._exactly(n)
                if b0 & 0x0F == 0x8:
                    self.close_code = struct.unpack("!H", data[:2])[0]
                    return
                message = json.loads(data)
                if "seq" in message:
                    self.seqs.append(message["seq"])
                else:
                    self.other.append(message)
        except OSError:
            return


class FastSSEReader(threading.Thread):
    """Reads an SSE stream through requests (which undoes the chunking)."""

    def __init__(self, url: str, last_event_id: int | None = None) -> None:
        super().__init__(daemon=True)
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        self.response = requests.get(f"{url}/sse", headers=headers, stream=True, timeout=10)
        assert self.response.status_code == 200
        self.seqs: list[int] = []
        self.events: list[str] = []  # event types that were not plain events

    def run(self) -> None:
        buffer = b""
        try:
            for chunk in self.response.iter_content(None):
                buffer += chunk
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    seq = re.search(rb"^id: (\d+)$", block, re.M)
                    if seq:
                        self.seqs.append(int(seq.group(1)))
                    elif block.startswith(b"event:"):
                        self.events.append(block.decode())
        except (OSError, requests.RequestException):
            return


def end_readers(server, *readers: threading.Thread) -> None:
    """Drain the server: it closes every WebSocket and ends every stream, so
    the reader threads return (closing a response another thread is reading
    would wait for that read's timeout)."""
    server.call(server.state.drain)
    for reader in readers:
        reader.join(5)
        assert not reader.is_alive()
        if isinstance(reader, FastSSEReader):
            reader.response.close()
        else:
            reader.sock.close()


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def resumes_without_loss(server, resumed, seqs: list[int], kind: str) -> None:
    """A cut-off client comes back after ``seqs[-1]``: the log fills the gap and a
    live event follows, every seq exactly once."""
    resumed.start()
    assert wait_until(lambda: fanout.stats(server)[kind] == 1, timeout=5)
    live = server.publish("after", {}).seq
    assert wait_until(lambda: resumed.seqs[-1:] == [live], timeout=10)
    assert seqs + resumed.seqs == list(range(1, live + 1))
    end_readers(server, resumed)


@pytest.mark.parametrize("mode", ["once", "naive"])
def test_never_reading_clients_leave_server_memory_bounded(server, mode):
    fanout.set_mode(server, mode)
    fast_ws = FastWSReader(ws_handshake(server.port))
    fast_sse = FastSSEReader(server.url)
    stuck_ws = ws_handshake(server.port, tiny_buffer=True)  # handshake, then never reads
    stuck_sse = sse_request(server.port)
    for reader in (fast_ws, fast_sse):
        reader.start()
    assert wait_until(lambda: fanout.stats(server)["ws"] == 2, timeout=5)
    assert wait_until(lambda: fanout.stats(server)["sse"] == 2, timeout=5)

    def caught_up(seq: int) -> bool:
        return min(len(fast_ws.seqs), len(fast_sse.seqs)) >= seq

    published = 0
    after_round = []
    for _ in range(ROUNDS):
        for _ in range(EVENTS_PER_ROUND // BATCH):
            # Pace the publisher by the fast readers (a fast reader is one that
            # keeps up); the stuck ones fall further behind with every batch.
            assert wait_until(partial(caught_up, published), timeout=20), (
                published,
                len(fast_ws.seqs),
                len(fast_sse.seqs),
            )
            for _ in range(BATCH):
                published = server.publish("big", PAYLOAD).seq
        assert wait_until(partial(caught_up, published), timeout=20)
        after_round.append(rss())

    grown = [(r - after_round[0]) / MiB for r in after_round]
    print("RSS after each round, MiB above round 1:", [f"{g:+.1f}" for g in grown])
    # Each round is ~10 MB per stuck client: kept (as before the budget),
    # rounds 2-4 added +31, +60, +89 MiB. Bounded, the figure stays flat.
    assert max(grown) < 12, grown

    # The fast readers got every event, in order, once.
    expected = list(range(1, published + 1))
    assert fast_ws.seqs == expected and fast_sse.seqs == expected
    # The stuck ones were cut; the fast ones are still connected.
    stats = fanout.stats(server)
    assert stats["ws"] == 1 and stats["sse"] == 1, stats
    assert stats["slow_consumers"] == 2, stats
    for sock in (stuck_ws, stuck_sse):
        sock.close()
    end_readers(server, fast_ws, fast_sse)


def fanned_out(server, seq: int) -> bool:
    return fanout.stats(server)["last_fanout"].get("seq") == seq


def publish_until_cut(server, cuts: int, limit: int = 5_000) -> int:
    """Publish 2 KB events until ``cuts`` clients were cut; the last seq."""
    seq = 0
    for _ in range(limit // 100):
        for _ in range(100):
            seq = server.publish("big", PAYLOAD).seq
        # Once the batch went out, every cut it causes has been made.
        assert wait_until(partial(fanned_out, server, seq), timeout=10)
        if fanout.stats(server)["slow_consumers"] >= cuts:
            return seq
    raise AssertionError(f"not cut after {limit} events: {fanout.stats(server)}")


def read_sse_until_end(sock: socket.socket) -> tuple[list[int], bytes]:
    """Raw bytes up to the last chunk (``0``): the ids seen, and the bytes."""
    data = bytearray()
    while not data.endswith(b"\r\n0\r\n\r\n"):
        chunk = sock.recv(1 << 20)
        assert chunk, "the server closed the connection before ending the stream"
        data += chunk
    return [int(n) for n in re.findall(rb"^id: (\d+)$", data, re.M)], bytes(data)


def test_slow_ws_client_is_told_closed_with_1013_and_resumes_without_loss(server):
    fanout.set_max_pending_bytes(server, 64 * 1024)
    sock = ws_handshake(server.port, tiny_buffer=True)
    assert wait_until(lambda: fanout.stats(server)["ws"] == 1, timeout=5)
    last = publish_until_cut(server, cuts=1)
    assert fanout.stats(server)["ws"] == 0  # out of the fan-out at once

    # It reads again: what was queued, then the notice, then the close frame.
    late = FastWSReader(sock)
    late.run()  # in this thread: returns at the close frame
    seqs, notices, code = late.seqs, late.other, late.close_code
    sock.close()
    assert seqs == list(range(1, len(seqs) + 1)) and 0 < len(seqs) < last
    assert [n["type"] for n in notices] == [RESYNC] and notices[0]["missed"] is None
    assert notices[0]["after"] == seqs[-1] and "?after=" in notices[0]["reason"]
    assert code == CloseCode.TRY_AGAIN_LATER

    # Reconnect with the last seq it got: the log fills the gap, nothing twice.
    resumes_without_loss(
        server, FastWSReader(ws_handshake(server.port, f"?after={seqs[-1]}")), seqs, "ws"
    )


def test_slow_sse_client_is_told_its_stream_ends_and_it_resumes_without_loss(server):
    fanout.set_max_pending_bytes(server, 64 * 1024)
    sock = sse_request(server.port)
    assert wait_until(lambda: fanout.stats(server)["sse"] == 1, timeout=5)
    last = publish_until_cut(server, cuts=1)
    assert fanout.stats(server)["sse"] == 0

    seqs, data = read_sse_until_end(sock)
    sock.close()
    assert seqs == list(range(1, len(seqs) + 1)) and 0 < len(seqs) < last
    assert b"event: resync\n" in data and b"Last-Event-ID" in data
    notice = json.loads(data.split(b"event: resync\ndata: ")[1].split(b"\n")[0])
    assert notice["after"] == seqs[-1] and notice["missed"] is None

    resumes_without_loss(server, FastSSEReader(server.url, last_event_id=seqs[-1]), seqs, "sse")


def test_a_client_that_never_reads_is_disconnected_after_the_grace(server, monkeypatch):
    monkeypatch.setattr(sse_slow, "SLOW_READER_GRACE_S", 0.3)
    fanout.set_max_pending_bytes(server, 64 * 1024)
    stuck = [ws_handshake(server.port, tiny_buffer=True), sse_request(server.port)]
    assert wait_until(lambda: fanout.stats(server)["sse"] == 1, timeout=5)
    publish_until_cut(server, cuts=2)
    # Neither takes its notice: the server closes both sockets itself.
    assert wait_until(lambda: server.open_connections == 0, timeout=10)
    for sock in stuck:
        sock.close()
