"""Notebook 02's measurements: WebSocket frames against HTTP requests.

* ``rtt_websocket`` / ``rtt_http``: round-trip times of one chat message,
  as a frame on an open WebSocket and as one HTTP request per message.
* ``bytes_per_message``: bytes on the wire for each, counted at the socket
  by a ``CountingRelay`` (lab/wire/relay.py) (headers and framing included; TCP/IP headers,
  which the socket API does not show, excluded).
* ``keepalive_vs_reconnect``: the mobile lesson. Idle keepalive pings cost a
  little every interval, forever; closing when idle and reconnecting costs a
  handshake each time. Measured over a short window with a compressed ping
  interval, then scaled to an hour (and the result says so).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
import websocket

from benchmarks.stats import percentile
from lab.wire.relay import CountingRelay
from lab.wire.websocket import decode_frames


@dataclass
class RTTResult:
    label: str
    rtts_ms: list[float] = field(repr=False)

    @property
    def p50(self) -> float:
        return percentile(self.rtts_ms, 50)

    @property
    def p99(self) -> float:
        return percentile(self.rtts_ms, 99)

    @property
    def per_second(self) -> float:
        return 1000 / statistics.mean(self.rtts_ms) if self.rtts_ms else 0.0

    def row(self) -> dict[str, Any]:
        return {
            "how": self.label,
            "messages": len(self.rtts_ms),
            "p50 RTT (ms)": round(self.p50, 3),
            "p99 RTT (ms)": round(self.p99, 3),
            "round trips/s": round(self.per_second),
        }


def connect_ws(url: str, **kwargs: Any) -> websocket.WebSocket:
    # websocket-client checks every text frame's UTF-8 in pure Python (unless
    # the optional wsaccel is installed): about 0.4 us per byte here, 58 us for
    # one chat broadcast. In a round-trip measurement that times the client,
    # not the transport, so it is off (json.loads would reject bad bytes anyway).
    kwargs.setdefault("skip_utf8_validation", True)
    ws = websocket.create_connection(url, suppress_origin=True, timeout=10, **kwargs)
    ws.sock.setsockopt(6, 1, 1)  # TCP_NODELAY (IPPROTO_TCP=6, TCP_NODELAY=1 on every OS)
    return ws


def _round_trip(ws: websocket.WebSocket, text: str, ref_of) -> float:
    """Send a chat line with a fresh ``ref``; wait for the frame carrying it
    back. Returns ms. The room and the echo baseline both go through this,
    so the client does the same work for each and the difference is the
    server's."""
    ref = uuid.uuid4().hex[:8]
    t0 = time.perf_counter()
    ws.send(json.dumps({"type": "say", "text": text, "ref": ref}))
    for _ in range(1000):
        if ref_of(json.loads(ws.recv())) == ref:
            return (time.perf_counter() - t0) * 1000
    raise RuntimeError("the server never sent the message back")


def room_round_trip(ws: websocket.WebSocket, text: str = "ping") -> float:
    """Send a chat line; wait for the room to broadcast it back. Returns ms."""
    return _round_trip(ws, text, lambda message: message.get("payload", {}).get("ref"))


def echo_round_trip(ws: websocket.WebSocket, text: str = "ping") -> float:
    """The same chat line against a bare echo handler: it comes back as sent."""
    return _round_trip(ws, text, lambda message: message.get("ref"))


def rtt_websocket(base_ws_url: str, n: int = 200, token: str = "demo", **kwargs) -> RTTResult:
    ws = connect_ws(f"{base_ws_url}/ws/room?token={token}", **kwargs)
    try:
        ws.recv()  # welcome
        for _ in range(min(20, n)):  # warm-up, not counted
            room_round_trip(ws)
        return RTTResult("WebSocket frame (room)", [room_round_trip(ws) for _ in range(n)])
    finally:
        ws.close()


def rtt_http(
    base_url: str, n: int = 200, keep_alive: bool = True, token: str = "demo"
) -> RTTResult:
    """One ``POST /room/say`` per message (keep-alive session, or a new
    connection for each, as a client without connection reuse would)."""
    headers = {"Authorization": f"Bearer {token}"}
    session = requests.Session() if keep_alive else None

    def once() -> float:
        t0 = time.perf_counter()
        post = session.post if session else requests.post
        answer = post(f"{base_url}/room/say", json={"text": "ping"}, headers=headers, timeout=10)
        answer.raise_for_status()
        return (time.perf_counter() - t0) * 1000

    try:
        for _ in range(min(20, n)):
            once()
        label = "HTTP request (keep-alive)" if keep_alive else "HTTP request (new connection)"
        return RTTResult(label, [once() for _ in range(n)])
    finally:
        if session:
            session.close()


def bytes_per_message(server_port: int, n: int = 50, token: str = "demo") -> dict[str, dict]:
    """Bytes each way per chat message, counted at the socket by a relay."""
    results: dict[str, dict] = {}
    with CountingRelay(server_port, keep=1 << 20) as relay:
        ws = connect_ws(f"ws://127.0.0.1:{relay.port}/ws/room?token={token}")
        ws.recv()
        handshake = relay.snapshot()
        relay.reset()
        for _ in range(n):
            room_round_trip(ws)
        counts = relay.snapshot()
        ws.close()
        results["WebSocket"] = {
            "handshake (once)": handshake["up"] + handshake["down"],
            "up per message": counts["up"] / n,
            "down per message": counts["down"] / n,
        }
        frames_up = decode_frames(bytes(relay.captured["up"]))
        frames_down = decode_frames(bytes(relay.captured["down"]))
        results["WebSocket"]["framing up"] = frames_up[0].header_len if frames_up else None
        results["WebSocket"]["framing down"] = frames_down[0].header_len if frames_down else None
        results["WebSocket"]["payload"] = frames_up[0].length if frames_up else None
    for keep_alive in (True, False):
        with CountingRelay(server_port, keep=1 << 16) as relay:
            session = requests.Session() if keep_alive else None
            headers = {"Authorization": f"Bearer {token}"}
            for i in range(n):
                post = session.post if session else requests.post
                post(
                    f"http://127.0.0.1:{relay.port}/room/say",
                    data=json.dumps({"type": "say", "text": "ping", "ref": f"{i:08x}"}),
                    headers={**headers, "Content-Type": "application/json"},
                    timeout=10,
                ).raise_for_status()
            counts = relay.snapshot()
            connections = relay.connections
            if session:
                session.close()
            label = "HTTP keep-alive" if keep_alive else "HTTP new connection"
            results[label] = {
                "handshake (once)": 0,
                "up per message": counts["up"] / n,
                "down per message": counts["down"] / n,
                "connections": connections,
                "request head": bytes(relay.captured["up"]).split(b"\r\n\r\n")[0].decode(),
            }
    return results


@dataclass
class MobileResult:
    window_s: float
    compressed_interval_s: float
    pings: int
    ping_bytes: int  # both directions, whole window
    reconnect_bytes: int  # one close + reconnect + resume cycle, both directions
    real_interval_s: float
    reconnect_every_s: float

    @property
    def bytes_per_ping(self) -> float:
        return self.ping_bytes / max(self.pings, 1)

    def per_hour(self) -> dict[str, dict[str, float]]:
        pings_per_hour = 3600 / self.real_interval_s
        reconnects_per_hour = 3600 / self.reconnect_every_s
        return {
            f"keepalive ping every {self.real_interval_s:g} s": {
                "wake-ups/hour": pings_per_hour,
                "bytes/hour": pings_per_hour * self.bytes_per_ping,
            },
            f"close when idle, reconnect every {self.reconnect_every_s / 60:g} min": {
                "wake-ups/hour": reconnects_per_hour,
                "bytes/hour": reconnects_per_hour * self.reconnect_bytes,
            },
        }


def keepalive_vs_reconnect(
    server_port: int,
    window_s: float = 1.5,
    real_interval_s: float = 30.0,
    reconnect_every_s: float = 900.0,
    token: str = "demo",
    compressed_interval_s: float | None = None,
) -> MobileResult:
    """Measure an idle connection's ping traffic over ``window_s`` (the
    server's ping interval is compressed, e.g. 0.1 s instead of 30 s), and
    one close-and-reconnect-with-resume cycle; ``per_hour()`` scales both."""
    with CountingRelay(server_port, keep=1 << 20) as relay:
        ws = connect_ws(f"ws://127.0.0.1:{relay.port}/ws/room?token={token}")
        welcome = json.loads(ws.recv())
        relay.reset()
        ws.settimeout(0.05)
        deadline = time.monotonic() + window_s
        while time.monotonic() < deadline:  # answer pings, as an idle app would
            try:
                ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                pass
        counts = relay.snapshot()
        pings = sum(1 for f in decode_frames(bytes(relay.captured["down"])) if f.opcode == 0x9)
        relay.reset()
        ws.close()  # the "close when idle" half: close handshake...
        ws = connect_ws(
            f"ws://127.0.0.1:{relay.port}/ws/room?token={token}&after={welcome['last_seq']}"
        )
        ws.recv()  # ...then a fresh handshake and the resume
        cycle = relay.snapshot()
        ws.close()
    return MobileResult(
        window_s, compressed_interval_s or window_s / max(pings, 1), pings,
        counts["up"] + counts["down"], cycle["up"] + cycle["down"], real_interval_s,
        reconnect_every_s,
    )  # fmt: skip
