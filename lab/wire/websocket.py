"""The WebSocket protocol on the wire, by hand (RFC 6455).

* ``accept_value(key)``: the handshake's ``Sec-WebSocket-Accept``.
* ``encode_frame`` / ``decode_frame``: one frame, field by field.
* ``RawWebSocket``: a plain TCP socket that does the handshake and sends
  whatever bytes you give it (including frames a polite library refuses to
  send: unmasked, bad UTF-8, invalid close codes).

The relay that counts (and keeps) the bytes between a real client and a real
server is ``lab.wire.relay.CountingRelay``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPCODES = {0x0: "continuation", 0x1: "text", 0x2: "binary", 0x8: "close", 0x9: "ping", 0xA: "pong"}


def accept_value(key: str) -> str:
    """``base64(sha1(key + GUID))``: proves the server read this handshake."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    length: int
    mask_key: bytes | None
    payload: bytes  # unmasked
    header_len: int  # bytes before the payload (2 + extended length + 4 if masked)
    raw: bytes = field(repr=False, default=b"")

    @property
    def kind(self) -> str:
        return OPCODES.get(self.opcode, f"reserved({self.opcode:#x})")

    @property
    def size(self) -> int:
        return self.header_len + self.length

    def fields(self) -> list[tuple[str, str, str]]:
        """(field, bits/bytes, meaning) rows for a wire view."""
        b0, b1 = self.raw[0], self.raw[1]
        rows = [
            (
                "FIN",
                str(b0 >> 7),
                "last frame of the message" if self.fin else "more frames follow",
            ),
            ("RSV1-3", f"{(b0 >> 4) & 7:03b}", "no extension"),
            ("opcode", f"{self.opcode:#x}", self.kind),
            ("MASK", str(b1 >> 7), "masked (client to server)" if self.masked else "not masked"),
            ("payload len", str(b1 & 0x7F), f"{self.length} bytes"),
        ]
        if self.mask_key is not None:
            rows.append(("masking key", self.mask_key.hex(" "), "payload XOR key[i % 4]"))
        body = self.raw[self.header_len : self.header_len + self.length]
        rows.append(("payload on the wire", body[:16].hex(" "), repr(self.payload[:40])))
        return rows


def decode_frame(data: bytes) -> Frame:
    """Decode the first frame in ``data`` (raises ValueError if incomplete)."""
    if len(data) < 2:
        raise ValueError("a frame needs at least 2 bytes")
    b0, b1 = data[0], data[1]
    length = b1 & 0x7F
    pos = 2
    if length == 126:
        length = struct.unpack(">H", data[2:4])[0]
        pos = 4
    elif length == 127:
        length = struct.unpack(">Q", data[2:10])[0]
        pos = 10
    mask_key = None
    if b1 & 0x80:
        mask_key = data[pos : pos + 4]
        pos += 4
    body = data[pos : pos + length]
    if len(body) < length:
        raise ValueError(f"incomplete frame: {len(body)} of {length} payload bytes")
    payload = mask(body, mask_key) if mask_key else bytes(body)
    return Frame(
        bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, mask_key is not None, length, mask_key,
        payload, pos, bytes(data[: pos + length]),
    )  # fmt: skip


def decode_frames(data: bytes) -> list[Frame]:
    frames = []
    while data:
        try:
            frame = decode_frame(data)
        except (ValueError, struct.error):
            break
        frames.append(frame)
        data = data[frame.size :]
    return frames


def mask(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def encode_frame(
    opcode: int, payload: bytes, masked: bool = True, fin: bool = True, key: bytes | None = None
) -> bytes:
    """One frame. Clients must mask (``masked=True``); servers must not."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    key = key if key is not None else os.urandom(4)
    return head + key + mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack(">H", code) + reason.encode("utf-8")


def parse_close(payload: bytes) -> tuple[int | None, str]:
    if len(payload) < 2:
        return None, ""
    return struct.unpack(">H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


class HandshakeRefused(Exception):
    def __init__(self, status: int, response: bytes) -> None:
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status
        self.response = response


class RawWebSocket:
    """A WebSocket client on a bare socket: you choose every byte."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, timeout: float = 5.0,
        rcvbuf: int | None = None,
    ) -> None:  # fmt: skip
        parts = urlsplit(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            # A tiny receive window makes a "slow consumer" quickly.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((parts.hostname, parts.port))
        self.key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {parts.hostname}:{parts.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sock.sendall(self.request)
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.response = head + b"\r\n\r\n"
        status_line = head.split(b"\r\n", 1)[0].split()
        self.status = int(status_line[1]) if len(status_line) > 1 else 0
        if self.status != 101:
            self.sock.close()
            raise HandshakeRefused(self.status, self.response + self.buffer)
        self.headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.decode().partition(":") for line in head.split(b"\r\n")[1:])
        }

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_text(self, text: str | bytes, masked: bool = True) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.send_raw(encode_frame(0x1, data, masked=masked))

    def recv_frame(self, timeout: float = 5.0) -> Frame | None:
        """The next frame, or None when the server closed the TCP connection."""
        self.sock.settimeout(timeout)
        while True:
            frames = decode_frames(self.buffer)
            if frames:
                frame = frames[0]
                self.buffer = self.buffer[frame.size :]
                return frame
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def recv_until_close(self, timeout: float = 5.0, limit: int = 10_000) -> list[Frame]:
        """Frames up to and including a close frame (or TCP close, or
        ``timeout`` s of silence)."""
        frames = []
        for _ in range(limit):
            try:
                frame = self.recv_frame(timeout)
            except TimeoutError:
                break  # the peer neither closed nor sent anything more
            if frame is None:
                break
            frames.append(frame)
            if frame.opcode == 0x8:
                break
        return frames

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True once the server has closed the TCP connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()
