"""One load-generator client on the wire: a few hundred bytes of state each.

Raw asyncio streams, no library: the WebSocket handshake and frame parsing
(RFC 6455), or HTTP/1.1 chunked decoding and SSE parsing, by hand, so ten
thousand of them fit in a worker process. ``lab/scale/loadgen.py`` says why
and how the workers are run.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from typing import Any


class Client:
    """One connection's state: a few integers and a small dict."""

    __slots__ = (
        "index", "server", "last_seq", "received", "dups", "gaps", "resyncs",
        "reconnects", "arrivals", "close_codes", "open", "task", "writer", "chunked",
    )  # fmt: skip

    def __init__(self, index: int, server: int) -> None:
        # (duplicates pairs these lines with ReconnectingSSEClient's counters
        # in lab/clients/sse.py by shape only: other state, kept apart.)
        self.index = index
        self.server = server
        self.last_seq = 0
        self.received = 0
        self.dups = 0
        self.gaps = 0
        self.resyncs = 0
        self.reconnects = 0
        self.arrivals: dict[int, int] = {}  # seq -> latency ns (last 64 kept)
        self.close_codes: list[int] = []
        self.open = False
        self.task: asyncio.Task | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.chunked = True

    def on_event(self, seq: int, sent_ns: int, now: int) -> None:
        if seq <= self.last_seq:
            self.dups += 1
            return
        if self.last_seq and seq > self.last_seq + 1:
            self.gaps += seq - self.last_seq - 1
        self.last_seq = seq
        self.received += 1
        self.arrivals[seq] = now - sent_ns
        if len(self.arrivals) > 64:
            del self.arrivals[next(iter(self.arrivals))]


async def handshake(kind: str, url: Any, client: Client) -> tuple:
    reader, writer = await asyncio.open_connection(url.hostname, url.port, limit=2**20)
    query = f"?after={client.last_seq}" if client.last_seq else ""
    host = f"{url.hostname}:{url.port}"
    if kind == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws{query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
    else:
        request = (
            f"GET /sse{query} HTTP/1.1\r\nHost: {host}\r\n"
            "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        )
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    want = b"101" if kind == "ws" else b"200"
    if status != want:
        writer.close()
        raise ValueError(f"server answered {status!r}")
    client.chunked = b"transfer-encoding: chunked" in head.lower()
    return reader, writer


async def read_ws(reader: asyncio.StreamReader, client: Client) -> None:
    while True:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        if b1 & 0x80:  # servers must not mask; tolerate it anyway
            await reader.readexactly(4)
        data = await reader.readexactly(n)
        now = time.monotonic_ns()
        opcode = b0 & 0x0F
        if opcode == 0x8:
            client.close_codes.append(struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005)
            return
        if opcode == 0x9 and client.writer is not None:  # ping -> masked pong
            mask = os.urandom(4)
            body = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
            client.writer.write(bytes([0x8A, 0x80 | len(data)]) + mask + body)
        elif opcode == 0x1:
            on_message(client, json.loads(data), now)


async def read_sse(reader: asyncio.StreamReader, client: Client) -> None:
    buffer = b""
    while True:
        if client.chunked:
            line = await reader.readline()
            if not line:
                return
            size = int(line.split(b";")[0], 16)
            if size == 0:
                return  # the server ended the stream (drain)
            chunk = (await reader.readexactly(size + 2))[:-2]
        else:
            chunk = await reader.read(65536)
            if not chunk:
                return
        now = time.monotonic_ns()
        buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            data: list[bytes] = []  # a notice names its kind in its JSON "type"
            for line in block.split(b"\n"):
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip(b" "))
            if data:
                on_message(client, json.loads(b"\n".join(data)), now)


def on_message(client: Client, message: dict, now: int) -> None:
    if message.get("type") == "resync":  # servers.cursor.resync_notice
        if message.get("missed"):  # gone for good: go on after them
            client.resyncs += 1
            client.last_seq = max(client.last_seq, int(message["missed"][1]))
    elif "seq" in message:
        client.on_event(int(message["seq"]), int(message.get("sent_ns", now)), now)
