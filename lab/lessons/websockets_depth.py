"""Plumbing for notebook 02 in depth: probes, tables, a throw-away CA, one plot.

* ``answer_to(url, frame)``: send one hand-made frame, say how the server answered;
* ``close_code_after(url, payloads)``: send messages, return the close code that ends it;
* ``throwaway_ca()``: a server TLS context and the CA file a client must trust;
* ``tls_connect_bytes(port, ca_file)``: bytes on the wire for one ``wss://`` connect;
* ``flood_until_slow(server, healthy)``, ``silent_peer(url)``: the slow and the silent member;
* ``table(rows)``, ``frame_table(title, frame)``, ``histogram(rtts)``: what the cells show;
* ``access_log()``: the server's access-log lines, captured while a block runs;
* ``FirstMessageClient``: one client of ``/ws/room-first`` (``servers/websocket_auth.py``)
  that sends a chosen first message, or none, and records what came back and when.

The measurements themselves live in ``lab/lessons/websockets.py``.
"""

from __future__ import annotations

import html
import json
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import trustme
import websocket  # websocket-client
from IPython.display import HTML

from lab.lessons.websockets import percentile
from lab.waiting import wait_until
from lab.wire.access_log import access_log  # noqa: F401 (for the notebook)
from lab.wire.relay import CountingRelay
from lab.wire.websocket import Frame, RawWebSocket, parse_close


def table(rows: list[dict[str, Any]]) -> HTML:
    """A list of dicts as an HTML table."""
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>"
        for r in rows
    )
    return HTML(f"<table><tr>{head}</tr>{body}</table>")


def frame_table(title: str, frame: Frame) -> HTML:
    """One frame: its first bytes in hex, then each header field and its meaning."""
    raw = frame.raw[:24].hex(" ") + (" ..." if frame.size > 24 else "")
    rows = [{"field": f, "value": v, "meaning": m} for f, v, m in frame.fields()]
    intro = (
        f"<b>{html.escape(title)}</b>: {frame.size} bytes, header {frame.header_len}, "
        f"payload {frame.length}<br><code>{raw}</code>"
    )
    return HTML(intro + table(rows).data)


def answer_to(url: str, frame: bytes) -> tuple[int | None, str] | str:
    """Send ``frame`` as raw bytes; the close code and reason the server
    answered with, or a sentence when no close frame came back."""
    raw = RawWebSocket(url)
    if "/ws/room" in url:
        raw.recv_frame()  # the room's welcome
    raw.send_raw(frame)
    frames = raw.recv_until_close(timeout=1)
    raw.close()
    closes = [parse_close(f.payload) for f in frames if f.opcode == 8]
    if closes:
        return closes[0]
    texts = [f.payload.decode() for f in frames if f.opcode == 1]
    return f"no close frame ({'accepted, echoed ' + texts[0] if texts else 'TCP just closed'})"


def close_code_after(url: str, payloads: list[str]) -> tuple[int | None, str] | None:
    """Send each payload on one connection; the close code that ends it (or None)."""
    ws = websocket.create_connection(url, suppress_origin=True, timeout=5)
    ws.recv()  # the welcome
    try:
        for p in payloads:
            ws.send(p)
        for _ in range(200):
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return parse_close(data)
    finally:
        ws.close()
    return None


def throwaway_ca() -> tuple[ssl.SSLContext, Path]:
    """A new CA, a certificate for 127.0.0.1 and localhost: (server context, CA file)."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    ca_file = Path(tempfile.mkdtemp(prefix="wss-ca-")) / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_ctx, ca_file


def tls_connect_bytes(port: int, ca_file: Path, path: str = "ws/room?token=demo") -> int:
    """Bytes both ways for one ``wss://`` connect and the room's welcome."""
    with CountingRelay(port, keep=8192) as relay:
        ws = websocket.create_connection(
            f"wss://127.0.0.1:{relay.port}/{path}",
            sslopt={"ca_certs": str(ca_file)},
            suppress_origin=True,
        )
        ws.recv()
        counts = relay.snapshot()
        ws.close()
    return counts["up"] + counts["down"]


def histogram(results: list) -> None:
    """Round-trip times of each way, one histogram each, on shared bins."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    top = max(percentile(r.rtts_ms, 99) for r in results)
    for r in results:
        ax.hist(r.rtts_ms, bins=60, range=(0, top), alpha=0.6, label=r.label)
    ax.set_xlabel("round-trip time (ms)")
    ax.set_ylabel("messages")
    ax.legend()
    ax.set_title("one chat line: a frame on an open WebSocket vs an HTTP request")
    plt.show()


def flood_until_slow(server: Any, healthy: Any, size: int = 60_000, limit: int = 400) -> list:
    """Publish ``size``-byte messages until the room counts a slow consumer;
    wait until ``healthy`` has them all and the slow one is closed. The events."""
    from servers.websocket import room_stats  # the room's counters, read on its loop

    published = []
    for i in range(limit):
        published.append(server.publish("board.update", {"n": i, "blob": "x" * size}))
        if room_stats(server)["slow_consumers"]:
            break
    healthy.recorder.wait_for(published[-1].seq, timeout=20)
    wait_until(lambda: room_stats(server)["closed_with"].get(1013), 5)
    return published


def silent_peer(url: str) -> tuple[list[Frame], bool, float]:
    """Connect and never answer a ping: (frames seen, dropped by the server, seconds)."""
    silent = RawWebSocket(url)
    t0 = time.monotonic()
    frames = silent.recv_until_close(timeout=5)
    dropped = silent.closed_by_peer(timeout=5)
    seconds = time.monotonic() - t0
    silent.close()
    return frames, dropped, seconds


class FirstMessageClient:
    """A client of ``/ws/room-first`` on its own thread: connects, sends
    ``first`` (a dict; None: nothing at all), then each of ``says`` (the
    last after ``pause`` seconds), and records every frame until the close.

    ``received``: the types of the messages that came before the close;
    ``close``: (code, reason) the server closed with, or None; ``seconds``:
    from just before the handshake to the close (or the end);
    ``echoes``: the texts of its own chat lines that came back."""

    def __init__(self, url: str, first: dict | None, says=(), pause: float = 0.0) -> None:
        self.url, self.first, self.says, self.pause = url, first, list(says), pause
        self.received: list[str] = []
        self.echoes: list[str] = []
        self.close: tuple[int | None, str] | None = None
        self.seconds = 0.0
        self.first_echo_at = self.closed_at = float("inf")  # time.monotonic() stamps
        self._thread = threading.Thread(target=self._run, name="first-message", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        ws = websocket.create_connection(self.url, suppress_origin=True, timeout=5)
        try:
            if self.first is not None:
                ws.send(json.dumps(self.first))
            self._read(ws, until="room.welcome" if self.says else None)
            for i, text in enumerate(self.says):
                if self.close:
                    break
                time.sleep(self.pause if i else 0)  # the later lines wait: past the deadline
                ws.send(json.dumps({"type": "say", "text": text}))
                self._read(ws, until="chat.message")
        except websocket.WebSocketTimeoutException:
            pass  # the server neither answered nor closed within the socket's 5 s
        finally:
            self.seconds = time.monotonic() - t0
            ws.close()

    def _read(self, ws: websocket.WebSocket, until: str | None) -> None:
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.closed_at = time.monotonic()
                self.close = parse_close(data)
                return
            if opcode != websocket.ABNF.OPCODE_TEXT:
                continue
            message = json.loads(data)
            self.received.append(message["type"])
            if message["type"] == "chat.message":
                self.echoes.append(message["payload"]["text"])
                self.first_echo_at = min(self.first_echo_at, time.monotonic())
            if message["type"] == until:
                return

    def wait(self, timeout: float = 10) -> FirstMessageClient:
        self._thread.join(timeout)
        return self

    def row(self, name: str) -> dict[str, Any]:
        code, reason = self.close or ("(still open: it closed itself)", "")
        return {
            "client": name,
            "first message": json.dumps(self.first) if self.first else "(nothing)",
            "received before the close": ", ".join(self.received) or "nothing",
            "closed with": code,
            "reason": reason,
            "seconds": f"{self.seconds:.2f}",
        }
