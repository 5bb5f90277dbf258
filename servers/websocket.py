"""A small live chat room over WebSockets, pushed through the event hub.

``GET /ws/room?token=T&after=N`` upgrades to a WebSocket (RFC 6455). Every
room message goes through ``hub.publish``, so it gets a sequence number and
lands in the hub's bounded log; a client that comes back with ``after=N``
(or sends ``{"type": "resume", "after": N}``) gets exactly what it missed. When
the log no longer holds some of those events the server *says so* with a
``room.resync`` message listing the gap, instead of skipping silently.

Client -> server (JSON text frames)::

    {"type": "say", "text": "hi", "ref": "optional client id"}
    {"type": "resume", "after": 41}

``text`` is a non-blank string of at most ``max_text`` characters, ``ref``
(optional) a string of at most 64, ``after`` a whole number written as
digits (``0.9``, ``true`` and ``Infinity`` are refused, not read as 0, 1
or a crash). ``POST /room/say`` with ``{"text": ..., "ref": ...}``
goes through the very same checks (``validate_say``), the same size limit
and a rate limit per user.

Server -> client: an event (has ``seq``: the ``servers.events.Event`` dict)
or a control message (no ``seq``): ``room.welcome``, ``room.resync``,
``room.error`` (malformed or unknown input, JSON nested too deeply: answered,
the connection stays open). Anything else going wrong while handling a
message closes with 1011 and a close frame, never a silently cut socket.

Guards, each checked by ``tests/test_websocket*.py``:

* token before upgrading: missing -> 401, wrong -> 403, no socket opened;
* ``Origin`` against an exact allowlist, never against ``Host`` (cross-site
  WebSocket hijacking, DNS rebinding): 403 (``origin_refusal``);
* max message size: close 1009; per-connection rate limit: close 1008
  (``POST /room/say``: 413 and 429);
* a bounded per-connection send queue: a consumer that falls ``send_queue``
  messages behind is told and closed with 1013 (try again later), and
  resumes with ``after=``; the fan-out to everyone else never waits for it;
* ping interval/timeout: a peer that stops answering pings is dropped;
* RFC 6455 where Tornado 6.6 departs from it: invalid close codes get 1002,
  invalid UTF-8 text gets 1007, unmasked client frames and bad opcodes or
  reserved bits get 1002 (``StrictProtocol`` below).

Run standalone: ``python -m servers.websocket --port 8000`` (token ``demo``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import struct
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from tornado.iostream import StreamClosedError
from tornado.log import access_log, gen_log
from tornado.util import _websocket_mask  # Tornado's C unmasking, as its reader uses
from tornado.web import Application, HTTPError, RequestHandler, stream_request_body
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

from .common import JSONErrorsMixin
from .cursor import parse_number
from .events import EncodedCache, Event
from .hub import EventHub
from .wsframes import encode_text_frame, send_bytes

DEFAULTS: dict[str, Any] = {
    "tokens": {"demo": "guest"},  # token -> user name
    "allowed_origins": (),  # exact "scheme://host[:port]" strings (or an OriginAllowlist)
    "max_message_size": 4096,  # bytes; above it Tornado closes with 1009
    "rate": 20.0,  # messages per second a connection may send (token bucket)...
    "burst": 40,  # ...with this many in one go
    "send_queue": 200,  # messages queued for one client before it counts as too slow
    "ping_interval": None,  # seconds; None or 0: no pings
    "ping_timeout": None,  # seconds without a pong before dropping (default: the interval)
    "close_timeout": 1.0,  # seconds to wait for the peer's close frame before cutting TCP
    "max_text": 500,  # characters in one chat line
}

# RFC 6455 section 7.4: codes a peer may send in a close frame. 1004-1006 and
# 1015 are reserved (never on the wire); 1016-2999 are unassigned; 3000-4999
# are for libraries and applications.
VALID_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}


def valid_close_code(code: int) -> bool:
    return code in VALID_CLOSE_CODES or 3000 <= code <= 4999


class OriginAllowlist:
    """The exact origins whose pages may open the room from a browser.

    A kernel cell may ``add`` an origin while the server thread reads the
    list: the set is replaced, never changed in place, so a reader sees the
    old set or the new one.
    """

    def __init__(self, origins: Iterable[str] = ()) -> None:
        self._origins: frozenset[str] = frozenset()
        for origin in origins:
            self.add(origin)

    def add(self, origin: str) -> None:
        # What a browser sends: scheme://host[:port], nothing before or after.
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or origin != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ValueError(f"an origin is scheme://host[:port] and nothing else, not {origin!r}")
        self._origins = self._origins | {origin}

    def __contains__(self, origin: object) -> bool:
        return origin in self._origins

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._origins))

    def __repr__(self) -> str:
        return f"OriginAllowlist({sorted(self._origins)})"


def origin_refusal(
    origin: str | None, allowed: OriginAllowlist, own: Iterable[str] = ()
) -> str | None:
    """Why a handshake with this ``Origin`` header is refused, or None.

    * No ``Origin``: not a browser (every browser sends one on a WebSocket
      handshake), so there is no victim's browser to protect; the token
      guards the endpoint. Allowed.
    * An exact member of the allowlist: allowed. Exact, because a prefix or
      suffix test lets ``https://app.example.evil.net`` pass for
      ``https://app.example``.
    * ``own``: this server's origin as its listening socket knows it
      (``http://127.0.0.1:<port>``; websocket-client sends that by default):
      a page there could only be this server's own. Allowed.
    * Anything else: refused. ``Host`` is never consulted. Tornado's own rule
      (an Origin whose host:port equals Host is same-origin) lets in a
      DNS-rebinding page: ``evil.example`` resolved to 127.0.0.1 sends
      ``Host: evil.example:P`` with ``Origin: http://evil.example:P``.
    * No ``X-Forwarded-Proto``/``-Host`` either: jupyter-server-proxy 4.6,
      which carries a page's WebSocket to this server, copies the browser's
      own headers (``Origin``, ``Host``, ``Cookie``) and states no forwarded
      scheme or host of its own (its ``proxy_open``; the browser tests record
      what arrives). Behind it the request's scheme is always http, even for
      an https page, so ``scheme://Host`` cannot name the page. The page's
      origin is added to the allowlist instead (``lab.browser`` reports it
      to the kernel over Jupyter's authenticated widget channel).
    """
    if origin is None or origin in allowed or origin in own:
        return None
    return f"origin {origin[:100]!r} is not allowed"


class StrictProtocol(WebSocketProtocol13):
    """Tornado's RFC 6455 implementation, with its known departures fixed.

    Tornado 6.6 accepts unmasked client frames, cuts the TCP connection
    without a close frame on invalid UTF-8 (and on bad opcodes or reserved
    bits), echoes whatever close code it receives, and crashes the read loop
    on a close reason that is not UTF-8. RFC 6455 says *fail the connection*:
    send a close frame with 1002 (protocol error) or 1007 (invalid payload),
    then close TCP. The frame header is checked as it is read, before any
    payload is processed.
    """

    def __init__(self, *args: Any, close_timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = close_timeout
        self.failed_with: tuple[int, str] | None = None
        self.sent_close: tuple[int, str | None] | None = None  # the code we closed with

    async def _receive_frame(self) -> None:
        """Read one frame (RFC 6455 5.2), checking its header first.

        Tornado 6.6's reader with the same bookkeeping (fragments, the 1009
        size limit, permessage-deflate's RSV1, ``_wire_bytes_in``), and two
        differences: a bad header fails the connection with a close frame
        (``_header_problem``) where Tornado cuts TCP or lets it through, and
        the masking key and the payload arrive in one read, so a small frame
        takes two reads instead of three. Each read is a round through
        Tornado's IOStream machinery: on a chat message that is a fifth of
        the server's work.
        """
        header = await self._read_bytes(2)
        b0, b1 = header[0], header[1]
        problem = self._header_problem(b0, b1)
        if problem:
            self.fail(1002, problem)
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
            self.close(1009, "message too big")
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

    def send_frame(self, frame: bytes) -> asyncio.Future | None:
        """Write one complete, pre-built frame (``servers.wsframes``): the
        same bytes object for every member, no Task per write as
        ``write_message`` makes. Returns the pending write's Future if the
        kernel did not take it all, else None."""
        if self.is_closing():
            raise WebSocketClosedError()
        if self._compressor is not None:  # RoomHandler never negotiates permessage-deflate
            raise RuntimeError("a pre-built frame cannot go to a compressed connection")
        try:
            return send_bytes(self.stream, frame)
        except StreamClosedError:
            raise WebSocketClosedError() from None

    def _handle_message(self, opcode: int, data: bytes) -> asyncio.Future | None:
        if self.client_terminated:
            return None
        if opcode == 0x1 and not self._frame_compressed:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(1007, "text frame is not valid UTF-8")
        elif opcode == 0x8:
            if len(data) == 1:
                self.fail(1002, "close payload of 1 byte")
            if len(data) >= 2:
                code = struct.unpack(">H", data[:2])[0]
                if not valid_close_code(code):
                    self.fail(1002, f"invalid close code {code}")
                try:
                    data[2:].decode("utf-8")
                except UnicodeDecodeError:
                    self.fail(1007, "close reason is not valid UTF-8")
        return super()._handle_message(opcode, data)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        if not self.server_terminated and self.sent_close is None:
            self.sent_close = (code if code is not None else 1000 if reason else 1005, reason)
        super().close(code, reason)
        # Tornado waits 5 s for the peer's close frame; a dead peer (say, one
        # that stopped answering pings) should not hold its socket that long.
        if self._waiting is not None and self.close_timeout < 5:
            self.stream.io_loop.remove_timeout(self._waiting)
            self._waiting = self.stream.io_loop.call_later(self.close_timeout, self._abort)


def _retrieve(future: asyncio.Future) -> None:
    """Read a finished write's outcome, so a write that failed because the
    peer left is not reported as "Task exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


def event_frame(event: Event) -> bytes:
    """The frame every member gets for ``event``: built once, shared."""
    return encode_text_frame(event.to_json())


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


MAX_REF = 64  # characters in a "ref", the client's own id for a message


class MessageError(ValueError):
    """A room message the server will not act on; the text is the reason sent back."""


def parse_message(raw: str | bytes) -> dict[str, Any]:
    """A room message's JSON object, or ``MessageError`` saying why not.

    4 KiB of ``[`` is 4,000 levels of nesting: Python's JSON parser gives up
    with ``RecursionError``, which is not a ``ValueError``. Caught here, so it
    is one more malformed message, not a dropped connection.
    """
    try:
        data = json.loads(raw)
    except RecursionError:
        raise MessageError("JSON nested too deeply") from None
    except ValueError as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError('expected an object with a "type", e.g. {"type": "say", "text": "hi"}')
    return data


def validate_say(data: dict[str, Any], options: dict[str, Any], sender: str) -> dict[str, Any]:
    """The chat payload for a "say" message from ``sender``, or ``MessageError``.

    The one set of checks for a chat line, whichever way it came (a frame on
    the room's WebSocket or ``POST /room/say``).
    """
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise MessageError('"say" needs a non-empty "text" string')
    if len(text) > options["max_text"]:
        raise MessageError(f"text longer than {options['max_text']} characters")
    _check_unicode("text", text)
    payload = {"from": sender, "text": text}
    if "ref" in data:
        ref = data["ref"]
        if not isinstance(ref, str) or len(ref) > MAX_REF:
            raise MessageError(f'"ref" must be a string of at most {MAX_REF} characters')
        _check_unicode("ref", ref)
        payload["ref"] = ref
    return payload


def _check_unicode(name: str, value: str) -> None:
    """JSON's ``"\\ud800"`` decodes to a lone surrogate, which has no UTF-8
    form: every UTF-8 transport (an SSE stream, a browser's text frame)
    would fail on it. ``isascii()`` is a flag check, so chat lines in plain
    ASCII cost nothing here."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise MessageError(f"{name} is not valid Unicode (a lone surrogate)") from None


class RoomStats:
    """Counters a notebook cell can read through ``server.call``."""

    def __init__(self) -> None:
        self.frames = EncodedCache()  # each event's frame, built once for all members
        self.connected = 0
        self.accepted = 0
        self.refused: dict[int, int] = {}
        self.closed_with: dict[int, int] = {}
        self.slow_consumers = 0
        self.errors_answered = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "frames"}


class RoomHandler(WebSocketHandler):
    """One member of the room: authenticated, origin-checked, rate-limited.

    The socket is only opened after ``prepare()`` accepted the token and the
    origin, so a refused client gets a plain HTTP 401/403 and never a
    WebSocket.
    """

    def initialize(self, hub: EventHub, options: dict[str, Any], stats: RoomStats) -> None:
        self.hub = hub
        self.options = options
        self.stats = stats
        self.user = ""
        self.last_sent = 0  # highest seq written to this client
        self.queued_last = 0  # highest seq queued for it
        self.replay_until = 0  # last seq of the replay being sent
        # A list, not a deque: it is empty most of the time (writes go
        # straight out) and an empty list is 56 bytes, an empty deque ~600.
        self.outbox: list[Event | dict] = []
        self.writing: asyncio.Future | None = None  # the last write handed to Tornado
        self.drain_pending = False  # a callback will send the rest of the outbox
        self.subscription = None
        self.bucket = TokenBucket(options["rate"], options["burst"])
        self.closing = False
        self.protocol: StrictProtocol | None = None
        self.close_code_seen: int | None = None

    # -- before the upgrade: plain HTTP answers --------------------------------
    def prepare(self) -> None:
        token = self.get_query_argument("token", None)
        auth = self.request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[len("Bearer ") :]
        if not token:
            self._refuse(401, "missing token: send Authorization: Bearer <token> or ?token=")
        # Compare in constant time, so response timing does not leak how
        # much of a guessed token was right.
        user = None
        for known, name in self.options["tokens"].items():
            if hmac.compare_digest(known.encode(), token.encode()):
                user = name
        if user is None:
            self._refuse(403, "unknown token")
        origin = self.request.headers.get("Origin")
        refusal = origin_refusal(origin, self.options["allowed_origins"], self.own_origins())
        if refusal:
            self._refuse(403, refusal)
        self.user = user

    def own_origins(self) -> tuple[str, ...]:
        """This server's origin, from the socket it accepted on: never from ``Host``."""
        # HTTP1Connection.stream is the accepted socket's IOStream; Tornado
        # has no public accessor for the local address.
        host, port = self.request.connection.stream.socket.getsockname()[:2]
        scheme = self.request.protocol  # https when the server itself speaks TLS
        named = f"[{host}]" if ":" in host else host  # an IPv6 literal in a URL
        loopback = (f"{scheme}://localhost:{port}",) if host in ("127.0.0.1", "::1") else ()
        return (f"{scheme}://{named}:{port}", *loopback)

    def _refuse(self, status: int, reason: str) -> None:
        self.stats.refused[status] = self.stats.refused.get(status, 0) + 1
        raise HTTPError(status, reason)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        JSONErrorsMixin.write_error(self, status_code, **kwargs)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, HTTPError):  # a refusal we chose: the reason is in the body
            gen_log.debug("%s: %s", self._request_summary(), value.log_message)
        else:
            super().log_exception(typ, value, tb)

    def check_origin(self, origin: str) -> bool:
        # Already checked, exactly, in prepare(). Tornado 6.6 calls this only
        # for handshakes it deems cross-origin: an Origin whose host:port
        # equals the Host header counts as same-origin and skips it, which is
        # the rule a forged Host fools (see origin_refusal).
        return True

    # -- per-handler settings Tornado reads ------------------------------------
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

    # -- the open connection ---------------------------------------------------
    def open(self) -> None:
        self.stats.accepted += 1
        self.stats.connected += 1
        self.set_nodelay(True)  # small chat frames: do not wait for Nagle
        # Subscribe before reading the backlog: nothing published in between
        # can fall into a gap (duplicates are skipped by seq in _enqueue).
        self.subscription = self.hub.subscribe(self.options["send_queue"])
        # The hub hands each event to ``offer`` on this loop; instead of
        # parking it in the subscription's queue for a reader task (one more
        # loop turn per event), put it straight into this client's outbox.
        self.subscription.offer = self._enqueue  # type: ignore[method-assign]
        self._queue({"type": "room.welcome", "user": self.user, "last_seq": self.hub.log.last_seq})
        try:
            raw = self.get_query_argument("after", None)
        except HTTPError as exc:  # not UTF-8: after the upgrade, no 400 can be sent
            self._error(f"cannot resume: {exc.log_message}")
            return
        if raw is not None:
            self._resume(raw)

    def _resume(self, raw: Any) -> None:
        try:
            # Strict: 0.9, true, Infinity or "٣" are client bugs to answer,
            # not numbers to guess at (int() would read them as 0, 1, a
            # crash and 3).
            after = parse_number(raw, "after")
            backlog, truncated = self.hub.log.since(after)
        except ValueError as exc:
            self._error(f"cannot resume: {exc}")
            return
        if truncated:
            oldest = backlog[0].seq if backlog else self.hub.log.last_seq + 1
            self._queue(
                {
                    "type": "room.resync",
                    "after": after,
                    "missed": [after + 1, oldest - 1],
                    "reason": f"the log no longer holds events {after + 1}..{oldest - 1}",
                }
            )
        # A resume moves the cursor: what is queued gets replaced by the
        # replay from ``after`` (control messages stay).
        self.last_sent = self.queued_last = after
        self.outbox = [m for m in self.outbox if not isinstance(m, Event)]
        self.replay_until = backlog[-1].seq if backlog else after
        for event in backlog:
            self._enqueue(event)

    def _enqueue(self, event: Event) -> None:
        if event.seq <= self.queued_last:
            return  # already queued or sent (the backlog and the live feed overlap)
        self.queued_last = event.seq
        if not self.outbox and self.writing is None and not self.closing:
            # The usual case, and the latency path of every chat line:
            # nothing queued ahead and no write pending, so the frame goes
            # to the socket now, without the outbox round trip.
            self._write_event(event)
            return
        self._queue(event)

    def _queue(self, message: Event | dict) -> None:
        if self.closing:
            return
        self.outbox.append(message)
        # A replay is bounded by the log (and shares its events): only what
        # queues up beyond it counts against the client.
        replay_left = max(0, self.replay_until - self.last_sent)
        if len(self.outbox) > self.options["send_queue"] + replay_left:
            self._slow_consumer()
            return
        self._send_next()

    def _slow_consumer(self) -> None:
        """The visible policy: tell the client, close with 1013, let it resume."""
        self.stats.slow_consumers += 1
        self.closing = True
        self.outbox.clear()
        try:
            notice = self.write_message(
                json.dumps(
                    {
                        "type": "room.slow_consumer",
                        "last_seq": self.last_sent,
                        "reason": f"more than {self.options['send_queue']} messages queued; "
                        f"reconnect with after={self.last_sent}",
                    }
                )
            )
        except WebSocketClosedError:
            return
        notice.add_done_callback(_retrieve)
        self.close(1013, "slow consumer: reconnect and resume")

    def _send_next(self, _done: asyncio.Future | None = None) -> None:
        """Write queued messages, one write on the wire at a time: that is
        the backpressure. A frame the kernel takes whole is done at once (an
        idle client, the usual case in a broadcast). A frame it cannot take
        leaves a pending write; messages behind it wait in the bounded outbox
        (where the slow-consumer policy can see them) and that write's
        completion drains them."""
        if _done is not None:
            self.drain_pending = False
            if _done.cancelled() or _done.exception() is not None:
                return  # the connection is gone; on_close cleans up
        while self.outbox and not self.closing:
            writing = self.writing
            if writing is not None:
                if not writing.done():
                    if not self.drain_pending:
                        self.drain_pending = True
                        writing.add_done_callback(self._send_next)
                    return
                if writing.cancelled() or writing.exception() is not None:
                    return  # the connection is gone; on_close cleans up
                self.writing = None
            message = self.outbox.pop(0)
            if isinstance(message, Event):
                self._write_event(message)
            else:
                self._write(encode_text_frame(json.dumps(message, separators=(",", ":"))))

    def _write_event(self, event: Event) -> None:
        self.last_sent = event.seq
        self._write(self.stats.frames.get(event, "ws", event_frame))

    def _write(self, frame: bytes) -> None:
        """One frame to the socket; ``writing`` keeps the pending write, if
        the kernel did not take it all (None when it did)."""
        try:
            self.writing = self.protocol.send_frame(frame)
        except WebSocketClosedError:
            self.writing = None
            self.closing = True  # on_close follows and cleans up
            return
        if self.writing is not None:
            self.writing.add_done_callback(_retrieve)  # a write cut off by a close is not an error

    def on_message(self, message: str | bytes) -> None:
        if not self.bucket.take():
            self.close(1008, f"rate limit: at most {self.options['rate']:g} messages/s")
            return
        try:
            self._handle(message)
        except MessageError as exc:
            self._error(str(exc))
        except Exception:
            # A bug, not bad input: Tornado would log it and cut the TCP
            # connection with no close frame. Say so with 1011 instead.
            gen_log.exception("room message from %s failed", self.user)
            self.close(1011, "server error")

    def _handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            raise MessageError("binary frames are not part of this protocol; send JSON text")
        data = parse_message(message)
        kind = data.get("type")
        if kind == "say":
            self.hub.publish("chat.message", validate_say(data, self.options, self.user))
        elif kind == "resume":
            self._resume(data.get("after"))
        elif not isinstance(kind, str):
            raise MessageError(
                'expected an object with a "type", e.g. {"type": "say", "text": "hi"}'
            )
        else:
            shown = kind if len(kind) <= 40 else kind[:40] + "..."
            raise MessageError(f"unknown message type {shown!r}; expected 'say' or 'resume'")

    def _error(self, reason: str) -> None:
        self.stats.errors_answered += 1
        self._queue({"type": "room.error", "error": reason})

    def on_close(self) -> None:
        self.stats.connected -= 1
        # The code this server sent (1009, 1008, 1013, 1002, 1007...), else
        # the one the client sent first.
        sent = self.protocol.sent_close if self.protocol is not None else None
        code = sent[0] if sent and (sent[0] != 1005 or self.close_code is None) else self.close_code
        self.close_code_seen = code
        if code is not None:
            self.stats.closed_with[code] = self.stats.closed_with.get(code, 0) + 1
        self.closing = True
        self.outbox.clear()
        if self.subscription is not None:
            self.subscription.close()


# POST /room/say reads and drops a body over the limit up to this size, then
# answers 413 on a connection that stays usable; a client that stops
# sending to read an early answer is rare, and closing on it with unread
# bytes makes the kernel reset the connection, often before the client has
# read the 413. Beyond this, reading costs more than a reset: 413 at once.
SAY_DRAIN_MAX = 1024 * 1024


@stream_request_body
class SayHandler(JSONErrorsMixin, RequestHandler):
    """``POST /room/say``: the same room message as one HTTP request, for
    comparing a request per message with a frame per message.

    The room's guards, each as HTTP: the token (401/403), a rate limit per
    user (429, the room's ``rate`` and ``burst``), the room's
    ``max_message_size`` as the body limit (413: at most that much is kept;
    a body declared larger than ``SAY_DRAIN_MAX`` is refused before it is
    read), then ``validate_say`` (400 with the reason)."""

    def initialize(
        self, hub: EventHub, options: dict[str, Any], buckets: dict[str, TokenBucket]
    ) -> None:
        self.hub = hub
        self.options = options
        self.buckets = buckets  # user -> TokenBucket, shared by every request
        self.body = bytearray()
        self.too_big = False

    def prepare(self) -> None:
        # Runs when the headers are in, before Tornado reads (or checks) the
        # body: the Content-Length is still as the client wrote it.
        try:
            declared = parse_number(
                self.request.headers.get("Content-Length", "0"), "Content-Length"
            )
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        # Past this Tornado stops reading (chunked bodies included) and
        # closes. Never above the server's own limit, if it has a lower one.
        server_limit = getattr(self.request.connection, "params", None)
        server_limit = getattr(server_limit, "max_body_size", None) or SAY_DRAIN_MAX
        drain_max = min(SAY_DRAIN_MAX, server_limit)
        self.request.connection.set_max_body_size(drain_max)
        if declared > drain_max:
            raise HTTPError(413, self._too_big_reason())

    def data_received(self, chunk: bytes) -> None:
        # Kept up to the limit; past it the rest is read and dropped.
        if self.too_big or len(self.body) + len(chunk) > self.options["max_message_size"]:
            self.too_big = True
            self.body.clear()
            return
        self.body += chunk

    def _too_big_reason(self) -> str:
        return f"body larger than {self.options['max_message_size']} bytes"

    def post(self) -> None:
        user = self._authenticate()
        if not self._bucket(user).take():
            self.set_status(429)
            self.set_header("Retry-After", str(math.ceil(1 / self.options["rate"])))
            self.finish({"error": f"rate limit: at most {self.options['rate']:g} messages/s"})
            return
        if self.too_big:
            raise HTTPError(413, self._too_big_reason())
        try:
            data = parse_message(bytes(self.body))
            if data.get("type", "say") != "say":
                raise MessageError('POST /room/say takes a "say" message: {"text": "..."}')
            payload = validate_say(data, self.options, user)
        except MessageError as exc:
            raise HTTPError(400, str(exc)) from None
        event = self.hub.publish("chat.message", payload)
        self.set_header("Content-Type", "application/json")
        self.finish(event.to_json())

    def _authenticate(self) -> str:
        auth = self.request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if not token:
            raise HTTPError(401, "missing token: send Authorization: Bearer <token>")
        # In constant time, as the WebSocket handshake compares it.
        user = None
        for known, name in self.options["tokens"].items():
            if hmac.compare_digest(known.encode(), token.encode()):
                user = name
        if user is None:
            raise HTTPError(403, "unknown token")
        return user

    def _bucket(self, user: str) -> TokenBucket:
        """The user's rate limit, shared by all their requests (the tokens
        table bounds how many users there are)."""
        bucket = self.buckets.get(user)
        if bucket is None:
            bucket = self.buckets[user] = TokenBucket(self.options["rate"], self.options["burst"])
        return bucket


class EchoHandler(WebSocketHandler):
    """A bare Tornado echo: the baseline the room's overhead is measured against."""

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        self.set_nodelay(True)

    def on_message(self, message: str | bytes) -> None:
        try:
            self.write_message(message, binary=isinstance(message, bytes)).add_done_callback(
                _retrieve
            )
        except WebSocketClosedError:
            pass


def room_options(**overrides: Any) -> dict[str, Any]:
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown room options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    options = {**DEFAULTS, **overrides}
    if not isinstance(options["allowed_origins"], OriginAllowlist):
        options["allowed_origins"] = OriginAllowlist(options["allowed_origins"])
    return options


def routes(hub: EventHub, **overrides: Any) -> list:
    options = room_options(**overrides)
    stats = RoomStats()
    hub.room_stats = stats  # type: ignore[attr-defined]  # read via server.call
    return [
        (r"/ws/room", RoomHandler, {"hub": hub, "options": options, "stats": stats}),
        (r"/room/say", SayHandler, {"hub": hub, "options": options, "buckets": {}}),
        (r"/ws/echo", EchoHandler),
    ]


def quiet_log(handler: RequestHandler) -> None:
    """Refusals are part of the lessons: log them at debug level, not as warnings."""
    access_log.debug("%d %s", handler.get_status(), handler._request_summary())


def make_app(hub: EventHub, **options: Any) -> Application:
    return Application(routes(hub, **options), hub=hub, log_function=quiet_log)


def app_factory(**options: Any):
    """``runtime.start("room", websocket.app_factory(ping_interval=1))``."""
    return lambda hub: make_app(hub, **options)


def room_stats(server: Any) -> dict[str, Any]:
    """The room's counters, read safely on the server's loop."""
    return server.call(lambda: server.hub.room_stats.as_dict())


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "websocket", __doc__.splitlines()[0])
