"""RFC 6455 where Tornado 6.6 departs from it, and the room's Tornado plumbing.

Tornado 6.6 accepts unmasked client frames, cuts the TCP connection without
a close frame on invalid UTF-8 (and on bad opcodes or reserved bits),
echoes whatever close code it receives, and crashes the read loop on a close
reason that is not UTF-8. RFC 6455 says *fail the connection*: send a close
frame with 1002 (protocol error) or 1007 (invalid payload), then close TCP.
``StrictProtocol`` does that; ``StrictHandler`` is a ``WebSocketHandler``
that speaks it, takes its limits from ``self.options`` and answers refusals
as JSON.

Why Tornado's private names: ``WebSocketProtocol13`` has no public hook to
check a frame's header before its payload is read, nor a close frame's code
before Tornado echoes it; its reader (``_receive_frame``) and dispatcher
(``_handle_message``) are the only places, and they work on private state.
``PRIVATE_NAMES`` lists each name used; ``tests/test_websocket_tornado_privates.py``
fails with a clear message if a Tornado release renames or removes one.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.log import access_log, gen_log
from tornado.util import _websocket_mask  # Tornado's C unmasking, as its reader uses
from tornado.web import HTTPError, RequestHandler
from tornado.websocket import WebSocketHandler, WebSocketProtocol13

from .close_codes import CloseCode
from .common import JSONErrorsMixin

# The private names used, by owner, and why no public API serves (the test
# checks each still exists).
PRIVATE_NAMES = {
    WebSocketProtocol13: (
        "_receive_frame",  # overridden: the only place a frame header is seen before its payload
        "_handle_message",  # overridden: the only place a close code is seen before the echo
        "_read_bytes",  # the protocol's read (counts wire bytes); no public read
        "_abort",  # close TCP now: public close() waits for the peer's close frame
        "_waiting",  # the 5 s close-frame timeout close() arms; not configurable
        "_decompressor",  # permessage-deflate state: no public accessor
        "_compressor",  # (websocket_backpressure.send_frame: no shared frames if set)
        "_frame_compressed",
        "_frame_mask",  # the reader's own state, which a replaced reader must keep
        "_fragmented_message_buffer",
        "_fragmented_message_opcode",
    ),
    RequestHandler: ("_request_summary",),  # "GET /ws/room (ip)", as Tornado's log; no accessor
}

# RFC 6455 section 7.4: codes a peer may send in a close frame. 1004-1006 and
# 1015 are reserved (never on the wire); 1016-2999 are unassigned; 3000-4999
# are for libraries and applications.
VALID_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}


def valid_close_code(code: int) -> bool:
    return code in VALID_CLOSE_CODES or 3000 <= code <= 4999


class StrictProtocol(WebSocketProtocol13):
    """Tornado's RFC 6455 implementation with its departures fixed: each
    frame's header checked before its payload is read, a bad one failing
    the connection with a close frame."""

    def __init__(self, *args: Any, close_timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = close_timeout
        self.failed_with: tuple[int, str] | None = None
        self.sent_close: tuple[int, str | None] | None = None  # the code we closed with

    async def _receive_frame(self) -> None:
        """Read one frame (RFC 6455 5.2), checking its header first.

        Tornado 6.6's reader with the same bookkeeping (fragments, the 1009
        limit, RSV1, ``_wire_bytes_in``), but a bad header fails the
        connection with a close frame (``_header_problem``), and the masking
        key and payload arrive in one read: a small frame takes two reads,
        not three (each read is a fifth of the server's work on a chat line).
        """
        header = await self._read_bytes(2)
        b0, b1 = header[0], header[1]
        problem = self._header_problem(b0, b1)
        if problem:
            self.fail(CloseCode.PROTOCOL_ERROR, problem)
        final = b0 & self.FIN
        opcode = b0 & self.OPCODE_MASK
        if self._decompressor is not None and opcode != 0:
            # Set on a message's first frame; decompressed once it is whole.
            self._frame_compressed = bool(b0 & self.RSV1)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", await self._read_bytes(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await self._read_bytes(8))[0]
        fragments = self._fragmented_message_buffer
        if length + (len(fragments) if fragments is not None else 0) > self.params.max_message_size:
            self.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
            self._abort()
            return
        # The header said masked (a client must mask): key, then payload.
        keyed = await self._read_bytes(4 + length)
        self._frame_mask = keyed[:4]
        data = _websocket_mask(self._frame_mask, keyed[4:])

        if opcode == 0:  # continuation (the header check saw a message to continue)
            fragments.extend(data)
            if final:
                opcode = self._fragmented_message_opcode
                data = bytes(fragments)
                self._fragmented_message_buffer = None
        elif not opcode & 0x8 and not final:  # the first frame of a fragmented message
            self._fragmented_message_opcode = opcode
            self._fragmented_message_buffer = bytearray(data)
        # Control frames (never fragmented) may arrive between fragments and
        # leave them alone.
        if final:
            handled = self._handle_message(opcode, data)
            if handled is not None:
                await handled

    def _header_problem(self, b0: int, b1: int) -> str | None:
        opcode = b0 & 0x0F
        rsv = b0 & 0x70
        if self._decompressor is not None:
            rsv &= ~0x40  # RSV1 means "compressed" when permessage-deflate is on
        if not b1 & 0x80:
            return "client frames must be masked"
        if rsv:
            return "reserved bits set without a negotiated extension"
        if opcode not in (0x0, 0x1, 0x2, 0x8, 0x9, 0xA):
            return f"unknown opcode {opcode:#x}"
        if opcode & 0x8:
            if not b0 & 0x80:
                return "control frames must not be fragmented"
            if (b1 & 0x7F) > 125:
                return "control frame payload over 125 bytes"
        elif opcode == 0 and self._fragmented_message_buffer is None:
            return "continuation frame with nothing to continue"
        elif opcode != 0 and self._fragmented_message_buffer is not None:
            return "new data frame inside a fragmented message"
        return None

    def fail(self, code: int, reason: str) -> None:
        """RFC 6455 7.1.7 "Fail the WebSocket Connection": close frame, then TCP."""
        self.failed_with = (code, reason)
        self.close(code, reason)
        self._abort()
        # Stop the read loop: it sees a closed stream and calls on_close.
        raise StreamClosedError()

    def _handle_message(self, opcode: int, data: bytes) -> asyncio.Future | None:
        if self.client_terminated:
            return None
        if opcode == 0x1 and not self._frame_compressed:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(CloseCode.INVALID_PAYLOAD, "text frame is not valid UTF-8")
        elif opcode == 0x8:
            if len(data) == 1:
                self.fail(CloseCode.PROTOCOL_ERROR, "close payload of 1 byte")
            if len(data) >= 2:
                code = struct.unpack(">H", data[:2])[0]
                if not valid_close_code(code):
                    self.fail(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
                try:
                    data[2:].decode("utf-8")
                except UnicodeDecodeError:
                    self.fail(CloseCode.INVALID_PAYLOAD, "close reason is not valid UTF-8")
        return super()._handle_message(opcode, data)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if not self.server_terminated and self.sent_close is None:
            # 1005 ("no status") is what a close without a code counts as.
            self.sent_close = (int(code) if code is not None else 1000 if reason else 1005, reason)
        super().close(code, reason)
        # Tornado waits 5 s for the peer's close frame; a dead peer (say, one
        # that stopped answering pings) should not hold its socket that long.
        if self._waiting is not None and self.close_timeout < 5:
            self.stream.io_loop.remove_timeout(self._waiting)
            self._waiting = self.stream.io_loop.call_later(self.close_timeout, self._abort)


class StrictHandler(WebSocketHandler):
    """A ``WebSocketHandler`` speaking ``StrictProtocol``, its limits read
    from ``self.options`` (``max_message_size``, ``ping_interval``,
    ``ping_timeout``, ``close_timeout``), refusals answered as JSON."""

    options: dict[str, Any]
    protocol: StrictProtocol | None = None

    @property
    def max_message_size(self) -> int:
        return self.options["max_message_size"]

    @property
    def ping_interval(self) -> float | None:
        return self.options["ping_interval"]

    @property
    def ping_timeout(self) -> float | None:
        return self.options["ping_timeout"]

    def get_compression_options(self) -> None:
        return None  # no permessage-deflate: one event's frame is the same for every member

    def get_websocket_protocol(self) -> StrictProtocol | None:
        protocol = super().get_websocket_protocol()
        if protocol is None:
            return None
        self.protocol = StrictProtocol(
            self, False, protocol.params, close_timeout=self.options["close_timeout"]
        )
        return self.protocol

    def final_close_code(self) -> int | None:
        """The code this server sent (1009, 1008, 1013, 1002, 1007...), else
        the one the client sent (1005: a close frame without a code)."""
        sent = self.protocol.sent_close if self.protocol is not None else None
        if sent and (sent[0] != 1005 or self.close_code is None):
            return sent[0]
        return self.close_code

    def check_origin(self, origin: str) -> bool:
        # Checked, exactly, in the handler's prepare() (websocket_guards).
        # Tornado 6.6 calls this only for handshakes it deems cross-origin:
        # an Origin whose host:port equals the Host header counts as
        # same-origin and skips it, which is the rule a forged Host fools.
        return True

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        JSONErrorsMixin.write_error(self, status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, HTTPError):  # a refusal we chose: the reason is in the body
            gen_log.debug("%s: %s", self._request_summary(), value.log_message)
        else:
            super().log_exception(typ, value, tb)


def quiet_log(handler: RequestHandler) -> None:
    """Refusals are part of the lessons: log them at debug level, not as warnings."""
    access_log.debug("%d %s", handler.get_status(), handler._request_summary())
