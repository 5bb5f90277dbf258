"""A server built for fan-out: one event, thousands of connections.

Every published event is broadcast to every connected WebSocket (``/ws``) and
SSE stream (``/sse``). Two things make this module different from the
teaching room of notebook 02 and the feed of notebook 03:

1. **How the bytes are made.** ``mode="naive"`` does what a first version
   does: for each client, serialise the event to JSON and call
   ``write_message()`` (WebSocket) or ``write()`` + ``flush()`` (SSE), so the
   JSON encoding, the UTF-8 encoding and the frame header are rebuilt N times.
   ``mode="once"`` builds the wire bytes a single time (a complete unmasked
   WebSocket text frame, a complete HTTP chunk holding the SSE event) and hands
   the very same ``bytes`` object to every connection
   (``wsframes.send_bytes``: straight to the socket when nothing is queued,
   else through ``IOStream.write``).

   Why writing to the stream is safe: a server's
   WebSocket frames are never masked (RFC 6455 5.1), so without
   permessage-deflate the frame is identical for every client; we never
   negotiate compression (``get_compression_options`` returns None) and check
   that the connection has no compressor before taking the shortcut. For SSE
   the chunk framing (``<hex length>\\r\\n...\\r\\n``) is what Tornado's
   ``HTTP1Connection`` would add for an HTTP/1.1 response; HTTP/1.0 clients
   get the unchunked bytes. Everything goes through the same ``IOStream``, so
   ordering with Tornado's own writes (headers, close frames) is preserved.
   What we give up: Tornado's per-message byte counters.

2. **Where events come from: a pluggable backplane.** With
   ``InMemoryBackplane`` (the default) an event reaches the clients of this
   process only. With ``RedisBackplane`` every process PUBLISHes to one Redis
   channel and SUBSCRIBEs to it, and fans out locally what it hears, so an
   event published on server A reaches the clients of server B.

3. **What a client that stops reading costs: at most a budget.** A write
   that the kernel cannot take waits in the connection's buffer in the
   server. Unbounded, one client that never reads keeps every event sent to
   it, and the server's memory grows with each broadcast. Each connection
   here may have at most ``max_pending_bytes`` (default 1 MiB) handed to it
   and not yet flushed; past that it is a **slow consumer**: it gets a
   ``_slow_consumer`` notice, then a WebSocket is closed with 1013 ("try
   again later") and an SSE stream ends (a client that does not take even
   that within ``SLOW_READER_GRACE_S`` is disconnected). The client
   reconnects with its last seq and catches up from the log; everyone
   else's fan-out never waits for it. The same policy as the room of notebook 02 and the streams of
   notebook 03, counted in bytes here because one event can be large.

Resume. Every event carries a sequence number and each process keeps a
bounded log; a client reconnecting with ``?last_seq=N`` (WebSocket) or
``Last-Event-ID: N`` (SSE) first gets what it missed. Across processes this
only works if the numbers mean the same thing everywhere: with Redis a Lua
script INCRements one counter and PUBLISHes in a single atomic step, so the
sequence is global and every process receives the events in sequence order
and logs the same numbers. A client of a crashed server can then resume on
any survivor. (Numbering per process would make seq 7 on A and seq 7 on B
different events: resume across processes would silently skip or repeat.)

Input. Event types are checked where events are made or arrive
(``servers.events.check_event_type``): a type with a CR or LF would end
SSE's ``event:`` line and forge an ``id:`` of its own. ``POST /publish``
answers 400; a malformed message from the Redis channel is dropped and
counted, with a rate-limited log line, and the subscriber keeps listening.
Resume numbers go through ``servers.cursor.parse_number``: anything but 1 to
18 ASCII digits is a 400 with the reason.

Operations: ``GET /health`` answers 200 with counts while serving and 503
while draining, for a load balancer's health check; ``POST /drain`` (or
SIGTERM when run standalone) closes every WebSocket with 1001 "going away"
and ends every SSE stream, so clients move to another server and resume.

Standalone: ``python -m servers.fanout --port 8000 [--redis redis://...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.web import Application, HTTPError, RequestHandler
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from .common import JSONErrorsMixin
from .cursor import CursorError, parse_number
from .events import Event, check_event_type
from .hub import EventHub
from .wsframes import encode_text_frame, send_bytes

MODES = ("naive", "once")
DRAIN_CODE = 1001  # RFC 6455 7.4.1: "going away", e.g. a server going down
SLOW_CODE = 1013  # RFC 6455 7.4.1: "try again later"
MAX_PENDING_BYTES = 1024 * 1024  # per connection, on top of the kernel's socket buffer
SLOW_READER_GRACE_S = 5.0  # a cut client that does not take its notice by then is disconnected
DROP_LOG_EVERY_S = 10.0  # at most one log line this often about dropped backplane messages

log = logging.getLogger(__name__)


# -- wire encoding ------------------------------------------------------------
def sse_field(name: str, value: object) -> str:
    """One ``name: value`` line. Refuses a value holding CR or LF: either
    would end the line, and what follows would be read as a field of its own
    (``"x\\nid: 999"`` forges an id and poisons the client's Last-Event-ID)."""
    text = str(value)
    if "\r" in text or "\n" in text:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ValueError(f"an SSE {name} field cannot hold CR or LF: {shown!r}")
    return f"{name}: {text}\n"


def sse_event(type: str, data: str, id: int | None = None) -> str:
    """One SSE block: optional ``id``, ``event``, one ``data`` line, blank line."""
    head = sse_field("id", id) if id is not None else ""
    return head + sse_field("event", type) + sse_field("data", data) + "\n"


def sse_text(event: Event) -> str:
    """One event: ``id``, ``event`` and one ``data`` line of (compact) JSON."""
    return sse_event(event.type, event.to_json(), id=event.seq)


def http_chunk(data: bytes) -> bytes:
    """``data`` framed as one HTTP/1.1 chunk (RFC 9112 7.1)."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


# -- the slow-consumer budget -------------------------------------------------
def _retrieve(future: asyncio.Future) -> None:
    """A write cut off by a close is not an error: read it so nothing logs it."""
    if not future.cancelled():
        future.exception()


class Outflow:
    """Bytes handed to one connection that it has not taken yet.

    Tornado keeps what the kernel did not accept in the stream's write
    buffer, whose size has no public accessor (``_write_buffer`` is private).
    What it does offer publicly is a Future per write that resolves once
    every byte written up to then has gone to the kernel. So we count: up by
    a write's size when it leaves something queued, down when its Future
    resolves. A replay on resume is counted apart: it is bounded by the log,
    and only what queues beyond it counts against the client.
    """

    __slots__ = ("pending", "replay")

    def __init__(self) -> None:
        self.pending = 0
        self.replay = 0

    def track(self, nbytes: int, future: asyncio.Future | None, replay: bool = False) -> None:
        if future is None:
            return  # the kernel took every byte: nothing waits in the server
        self.pending += nbytes
        if replay:
            self.replay += nbytes
        future.add_done_callback(partial(self._flushed, nbytes, replay))

    def _flushed(self, nbytes: int, replay: bool, future: asyncio.Future) -> None:
        self.pending -= nbytes
        if replay:
            self.replay -= nbytes
        _retrieve(future)

    @property
    def beyond_replay(self) -> int:
        return self.pending - self.replay


class DropLog:
    """Counts malformed messages dropped; logs one line per ``DROP_LOG_EVERY_S``
    at most, so a flood of junk cannot flood the log too."""

    def __init__(self) -> None:
        self.count = 0
        self._unlogged = 0
        self._logged_at = float("-inf")

    def drop(self, reason: str) -> None:
        self.count += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= DROP_LOG_EVERY_S:
            log.warning(
                "dropped %d malformed backplane message(s); last: %s", self._unlogged, reason
            )
            self._logged_at = now
            self._unlogged = 0


# -- the log that makes resume possible --------------------------------------
class SeqLog:
    """The last ``capacity`` events, keyed by a sequence number given to us.

    Unlike ``servers.events.EventLog`` it does not number events itself: with
    a backplane the number comes from whoever assigned it (the Redis counter).
    """

    def __init__(
        self, capacity: int = 10_000, start_at: int = 0, max_bytes: int = 8 * 2**20
    ) -> None:
        self._events: deque[Event] = deque(maxlen=capacity)
        # Bounded in bytes too, as EventLog: each event keeps its encoded JSON.
        self.max_bytes = max_bytes
        self._bytes = 0
        self.last_seq = start_at
        self._lock = threading.Lock()

    def start_at(self, seq: int) -> None:
        with self._lock:
            if not self._events:
                self.last_seq = max(self.last_seq, seq)

    def append(self, event: Event) -> bool:
        """Keep ``event``; False (and ignored) if its seq is not new."""
        with self._lock:
            if event.seq <= self.last_seq:
                return False
            if len(self._events) == self._events.maxlen:
                self._bytes -= len(self._events[0].to_json())  # about to fall out by count
            self._events.append(event)
            self._bytes += len(event.to_json())
            while self._bytes > self.max_bytes and len(self._events) > 1:
                self._bytes -= len(self._events.popleft().to_json())
            self.last_seq = event.seq
            return True

    def since(self, seq: int) -> tuple[list[Event], bool]:
        """Events after ``seq`` and whether some are already gone (resync)."""
        with self._lock:
            if seq < 0:
                raise ValueError(f"sequence number {seq} is negative")
            if seq > self.last_seq:
                raise ValueError(
                    f"sequence number {seq} is in the future (last is {self.last_seq})"
                )
            oldest = self._events[0].seq if self._events else self.last_seq + 1
            return [e for e in self._events if e.seq > seq], seq + 1 < oldest


# -- backplanes -----------------------------------------------------------------
Deliver = Callable[[Event], None]


def make_event(seq: int, type: Any, payload: Any, sent_ns: Any) -> Event:
    """Every event fan-out makes goes through here: the type is checked
    (``ValueError`` if it could break a transport's framing)."""
    return Event.from_dict({"seq": seq, "type": type, "payload": payload, "sent_ns": sent_ns})


class InMemoryBackplane:
    """One process only: an event reaches the clients connected here."""

    name = "in-memory"

    def __init__(self) -> None:
        self._deliver: Deliver | None = None
        self._seq = 0
        self.dropped = DropLog()  # nothing to drop here: every event is ours

    async def start(self, deliver: Deliver) -> int:
        self._deliver = deliver
        return self._seq

    async def publish(self, type: str, payload: dict, sent_ns: int, seq: int | None = None) -> int:
        assert self._deliver is not None, "backplane not started"
        event = make_event(seq if seq is not None else self._seq + 1, type, payload, sent_ns)
        self._seq = event.seq
        self._deliver(event)
        return self._seq

    async def close(self) -> None:
        self._deliver = None


# INCR and PUBLISH in one atomic step: Redis runs a script without
# interleaving other commands, so channel order == sequence order even with
# several publishers. The seq travels as a prefix because cjson would turn
# the nanosecond timestamp into a double and lose digits.
_PUBLISH_LUA = """
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', KEYS[2], seq .. '|' .. ARGV[1])
return seq
"""


class RedisBackplane:
    """Redis pub/sub: every process publishes to, and subscribes to, one channel."""

    name = "redis"

    def __init__(self, url: str, channel: str = "fanout:events", seq_key: str = "fanout:seq"):
        self.url = url
        self.channel = channel
        self.seq_key = seq_key
        self._redis: Any = None
        self._pubsub: Any = None
        self._task: asyncio.Task | None = None
        self._script: Any = None
        self.received = 0
        self.dropped = DropLog()

    async def start(self, deliver: Deliver) -> int:
        import redis.asyncio as aioredis  # optional dependency: only for this backplane

        self._redis = aioredis.from_url(self.url)
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(self.channel)
        self._script = self._redis.register_script(_PUBLISH_LUA)
        self._task = asyncio.get_running_loop().create_task(self._listen(deliver))
        # Start the local log at the global counter, so a client that already
        # saw seq N can resume here even if this process started after N.
        return int(await self._redis.get(self.seq_key) or 0)

    async def _listen(self, deliver: Deliver) -> None:
        async for message in self._pubsub.listen():
            if message.get("type") != "message":
                continue
            # Anyone who can reach Redis can PUBLISH on the channel: what
            # arrives is input, checked like any other. A bad message is
            # dropped; the loop goes on, or this process would go deaf.
            try:
                event = self.decode(message["data"])
            except (ValueError, RecursionError) as exc:
                self.dropped.drop(str(exc)[:200])
                continue
            self.received += 1
            deliver(event)

    @staticmethod
    def decode(raw: bytes) -> Event:
        """``b"<seq>|<json>"`` as ``_PUBLISH_LUA`` sends it; ``ValueError`` if not."""
        seq, bar, body = raw.partition(b"|")
        if not bar:
            raise ValueError("no '<seq>|' prefix")
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError(f"not a JSON object: {type(data).__name__}")
        return make_event(
            parse_number(seq.decode("ascii", "replace"), "seq"),
            data.get("type"),
            data.get("payload"),
            data.get("sent_ns"),
        )

    async def publish(self, type: str, payload: dict, sent_ns: int, seq: int | None = None) -> int:
        check_event_type(type)  # refused here rather than by every subscriber
        body = json.dumps({"type": type, "payload": payload, "sent_ns": sent_ns})
        return int(await self._script(keys=[self.seq_key, self.channel], args=[body]))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for conn in (self._pubsub, self._redis):
            if conn is not None:  # aclose() since redis-py 5.0.1, close() before
                await (conn.aclose() if hasattr(conn, "aclose") else conn.close())


# -- the broadcaster: connections, log, modes -------------------------------------
class Broadcaster:
    """Every connection of this process, and how an event reaches them all."""

    def __init__(
        self,
        hub: EventHub,
        backplane: Any = None,
        mode: str = "once",
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.hub = hub
        self.backplane = backplane or InMemoryBackplane()
        self.set_mode(mode)
        # Read on every write, so a notebook cell may change it live.
        self.max_pending_bytes = max_pending_bytes
        self.slow_consumers = 0
        self.log = SeqLog()
        self.ws: set[FanoutWebSocket] = set()
        self.sse: set[FanoutSSE] = set()
        self.draining = False
        self.last_fanout: dict[str, Any] = {}
        self.fanouts: list[dict[str, Any]] = []
        self.delivered_events = 0
        self._task: asyncio.Task | None = None
        self.started: asyncio.Task | None = None

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode

    async def start(self) -> None:
        self.log.start_at(await self.backplane.start(self.deliver))
        # Events published through the hub (``server.publish()`` from a
        # notebook cell, any thread) go to the backplane from here.
        sub = self.hub.subscribe(maxsize=1_000_000)
        self._task = asyncio.get_running_loop().create_task(self._forward(sub))

    async def _forward(self, sub: Any) -> None:
        in_memory = isinstance(self.backplane, InMemoryBackplane)
        while (event := await sub.get()) is not None:
            # In memory the hub's number is the global one; Redis assigns its own.
            await self.backplane.publish(
                event.type, event.payload, event.sent_ns, event.seq if in_memory else None
            )

    async def publish(self, type: str, payload: dict) -> int:
        """Publish from a request handler; returns the seq clients will see.
        ``ValueError`` if ``type`` is not a valid event type."""
        check_event_type(type)
        if isinstance(self.backplane, InMemoryBackplane):
            return self.hub.publish(type, payload).seq
        return await self.backplane.publish(type, payload, time.monotonic_ns())

    async def close(self) -> None:
        """Idempotent: the standalone main and the runtime's hook both call it."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
            await self.backplane.close()

    # -- loop thread: one event to every connection -------------------------
    def deliver(self, event: Event) -> None:
        if not self.log.append(event):
            return  # a seq we already have: never send it twice
        self.delivered_events += 1
        started = time.perf_counter()
        if self.mode == "once":
            self._fan_out_once(event)
        else:
            self._fan_out_naive(event)
        record = {
            "seq": event.seq,
            "mode": self.mode,
            "clients": len(self.ws) + len(self.sse),
            "seconds": time.perf_counter() - started,
        }
        self.last_fanout = record
        self.fanouts.append(record)
        del self.fanouts[:-1000]

    def _too_slow(self, handler: FanoutWebSocket | FanoutSSE) -> bool:
        """The slow-consumer policy, checked before each write: a connection
        with more than ``max_pending_bytes`` still unsent is cut (it may go
        over by one event, never more)."""
        if handler.outflow.beyond_replay <= self.max_pending_bytes:
            return False
        self.slow_consumers += 1
        handler.cut_slow_consumer(self.max_pending_bytes)
        return True

    def _fan_out_naive(self, event: Event) -> None:
        for handler in list(self.ws):
            if self._too_slow(handler):
                continue
            try:
                # to_json() per client: the encoding work is repeated N times
                text = event.to_json()
                handler.outflow.track(len(text), handler.write_message(text))
            except WebSocketClosedError:
                self.ws.discard(handler)
        for handler in list(self.sse):
            if self._too_slow(handler):
                continue
            text = sse_text(event)
            try:
                handler.write(text)
                handler.outflow.track(len(text), handler.flush())
            except StreamClosedError:
                self.sse.discard(handler)

    def _fan_out_once(self, event: Event) -> None:
        frame = encode_text_frame(event.to_json())
        body = sse_text(event).encode("utf-8")
        chunked = http_chunk(body)
        for handler in list(self.ws):
            if self._too_slow(handler):
                continue
            conn = handler.ws_connection
            try:
                if conn is None or conn.is_closing():
                    raise StreamClosedError()
                if getattr(conn, "_compressor", None) is not None:
                    sent = handler.write_message(event.to_json())  # per-client bytes
                else:
                    sent = send_bytes(conn.stream, frame)  # the same bytes object for all
                handler.outflow.track(len(frame), sent)
            except (StreamClosedError, WebSocketClosedError):
                self.ws.discard(handler)
        for handler in list(self.sse):
            if self._too_slow(handler):
                continue
            connection = handler.request.connection
            try:
                data = chunked if getattr(connection, "_chunking_output", False) else body
                handler.outflow.track(len(data), send_bytes(connection.stream, data))
            except StreamClosedError:
                self.sse.discard(handler)

    def replay(self, last_seq: int) -> tuple[list[Event], str | None]:
        """What a reconnecting client missed, or why it must resync."""
        try:
            events, truncated = self.log.since(last_seq)
        except ValueError as exc:
            return [], str(exc)
        if truncated:
            return events, f"events after {last_seq} are no longer in this server's log"
        return events, None

    def drain(self) -> int:
        """Stop serving: 503 on /health, close every client so it moves on."""
        self.draining = True
        closing = len(self.ws) + len(self.sse)
        for handler in list(self.ws):
            handler.close(DRAIN_CODE, "server draining: reconnect elsewhere")
        for handler in list(self.sse):
            handler.end_stream()
        return closing

    def health(self) -> dict[str, Any]:
        return {
            "status": "draining" if self.draining else "ok",
            "pid": os.getpid(),
            "backplane": self.backplane.name,
            "mode": self.mode,
            "ws": len(self.ws),
            "sse": len(self.sse),
            "last_seq": self.log.last_seq,
            "delivered_events": self.delivered_events,
            "last_fanout": self.last_fanout,
            "max_pending_bytes": self.max_pending_bytes,
            "slow_consumers": self.slow_consumers,
            "dropped": self.backplane.dropped.count,
        }


# -- handlers -----------------------------------------------------------------------
def _last_seq(handler: RequestHandler) -> int | None:
    """``?last_seq=N`` (first) or SSE's ``Last-Event-ID: N``; None if neither.

    A number this server handed out: ``servers.cursor.parse_number`` (1 to 18
    ASCII digits). Anything else, blank included, is a 400 with the reason.
    A well-formed number beyond the log is not an error: ``replay`` answers
    it with a resync notice (the server may have restarted).
    """
    # strip=False: " 5" (a "+5" sent unencoded) is not a number we handed out.
    raw = handler.get_query_argument("last_seq", None, strip=False)
    name = "last_seq"
    if raw is None:
        raw, name = handler.request.headers.get("Last-Event-ID"), "Last-Event-ID"
    if raw is None:
        return None
    try:
        return parse_number(raw, name)
    except CursorError as exc:
        raise HTTPError(400, str(exc)) from None


class FanoutWebSocket(JSONErrorsMixin, WebSocketHandler):
    """One subscriber: receives every broadcast; ``?last_seq=N`` resumes."""

    def initialize(self, broadcaster: Broadcaster) -> None:
        self.b = broadcaster
        self.outflow = Outflow()

    def prepare(self) -> None:
        if self.b.draining:
            raise HTTPError(503, "server draining: connect to another one")
        self.resume_from = _last_seq(self)  # 400 before upgrading if malformed

    def get_compression_options(self) -> None:
        return None  # encode-once relies on identical, uncompressed frames

    def open(self) -> None:
        if self.resume_from is not None:
            missed, problem = self.b.replay(self.resume_from)
            if problem:
                self.write_message(
                    {"type": "_resync", "reason": problem, "last_seq": self.b.log.last_seq}
                )
            for event in missed:
                text = event.to_json()
                self.outflow.track(len(text), self.write_message(text), replay=True)
        # Added after the replay, on the loop thread: nothing can slip between.
        self.b.ws.add(self)

    def cut_slow_consumer(self, limit: int) -> None:
        """Say why, then close with 1013; the client resumes with ``?last_seq=``.
        A client that does not even take that within ``SLOW_READER_GRACE_S``
        is disconnected, which frees what was queued for it."""
        self.b.ws.discard(self)
        conn = self.ws_connection
        if conn is None:
            return  # already closed: on_close has run or will
        notice = {
            "type": "_slow_consumer",
            "reason": f"more than {limit} bytes waiting for you: "
            "reconnect with ?last_seq=<the last seq you received>",
        }
        try:
            self.write_message(notice).add_done_callback(_retrieve)
        except WebSocketClosedError:
            return
        self.close(SLOW_CODE, "slow consumer: reconnect and resume")
        # Tornado would wait 5 s for the client's close frame; the same grace
        # as SSE keeps one visible number for both.
        asyncio.get_running_loop().call_later(SLOW_READER_GRACE_S, conn.stream.close)

    def on_message(self, message: str | bytes) -> None:
        pass  # one-way fan-out; client messages are ignored

    def on_close(self) -> None:
        self.b.ws.discard(self)


class FanoutSSE(JSONErrorsMixin, RequestHandler):
    """One SSE stream of every broadcast; ``Last-Event-ID`` resumes."""

    def initialize(self, broadcaster: Broadcaster) -> None:
        self.b = broadcaster
        self.outflow = Outflow()
        self._done: asyncio.Future | None = None
        self.cut_slow = False

    async def get(self) -> None:
        if self.b.draining:
            raise HTTPError(503, "server draining: connect to another one")
        resume_from = _last_seq(self)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self.write(sse_field("retry", 500) + "\n")
        replayed = 0
        if resume_from is not None:
            missed, problem = self.b.replay(resume_from)
            if problem:
                payload = json.dumps({"reason": problem, "last_seq": self.b.log.last_seq})
                self.write(sse_event("_resync", payload))
            for event in missed:
                text = sse_text(event)
                self.write(text)
                replayed += len(text)
        self._done = asyncio.get_running_loop().create_future()
        self.outflow.track(replayed, self.flush(), replay=True)
        self.b.sse.add(self)
        await self._done
        self.b.sse.discard(self)
        if self.cut_slow:
            await self._finish_or_drop()

    def cut_slow_consumer(self, limit: int) -> None:
        """Say why and end the stream; the client resumes with Last-Event-ID."""
        self.b.sse.discard(self)
        self.cut_slow = True
        reason = (
            f"more than {limit} bytes waiting for you: reconnect with Last-Event-ID (your last id)"
        )
        self.write(sse_event("_slow_consumer", json.dumps({"reason": reason})))
        self.end_stream()

    async def _finish_or_drop(self) -> None:
        """End the response; a reader that does not take even that within
        ``SLOW_READER_GRACE_S`` is disconnected, so the bytes it left unread
        do not sit in the server for as long as it keeps the socket open."""
        finished = asyncio.ensure_future(self.finish())
        finished.add_done_callback(_retrieve)
        done, _ = await asyncio.wait({finished}, timeout=SLOW_READER_GRACE_S)
        if not done:
            self.request.connection.stream.close()

    def end_stream(self) -> None:
        """Drain: finish the response; the client reconnects elsewhere."""
        self.b.sse.discard(self)
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def on_connection_close(self) -> None:
        self.end_stream()


class HealthHandler(RequestHandler):
    """Health check for a load balancer: 200 while serving, 503 while draining."""

    def initialize(self, broadcaster: Broadcaster) -> None:
        self.b = broadcaster

    def get(self) -> None:
        self.set_status(503 if self.b.draining else 200)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(self.b.health()))


class PublishHandler(JSONErrorsMixin, RequestHandler):
    """``POST /publish {"type": ..., "payload": {...}}`` -> ``{"seq": N}``."""

    def initialize(self, broadcaster: Broadcaster) -> None:
        self.b = broadcaster

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise HTTPError(400, "body is not JSON") from None
        except RecursionError:
            raise HTTPError(400, "JSON nested too deeply") from None
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            raise HTTPError(400, 'expected {"type": "<string>", "payload": {...}}')
        try:
            check_event_type(body["type"])
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        payload = body.get("payload") or {}
        if not isinstance(payload, dict):
            raise HTTPError(400, "payload must be a JSON object")
        seq = await self.b.publish(body["type"], payload)
        self.finish({"seq": seq, "pid": os.getpid()})


class ModeHandler(JSONErrorsMixin, RequestHandler):
    """``POST /mode?mode=naive|once``: switch how fan-out builds its bytes."""

    def initialize(self, broadcaster: Broadcaster) -> None:
        self.b = broadcaster

    def post(self) -> None:
        mode = self.get_query_argument("mode", "")
        try:
            self.b.set_mode(mode)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        self.finish({"mode": mode})


class DrainHandler(RequestHandler):
    """``POST /drain``: graceful shutdown, step one (see ``Broadcaster.drain``)."""

    def initialize(self, broadcaster: Broadcaster) -> None:
        self.b = broadcaster

    def post(self) -> None:
        self.finish({"closing": self.b.drain()})


def routes(
    hub: EventHub,
    backplane: Any = None,
    mode: str = "once",
    max_pending_bytes: int = MAX_PENDING_BYTES,
) -> list:
    b = Broadcaster(hub, backplane, mode, max_pending_bytes)
    # Awaitable: ``server.call(lambda: b.started)`` returns once subscribed.
    b.started = asyncio.get_running_loop().create_task(b.start())
    kw = {"broadcaster": b}
    return [
        (r"/ws", FanoutWebSocket, kw),
        (r"/sse", FanoutSSE, kw),
        (r"/health", HealthHandler, kw),
        (r"/publish", PublishHandler, kw),
        (r"/mode", ModeHandler, kw),
        (r"/drain", DrainHandler, kw),
    ]


def make_app(
    hub: EventHub,
    backplane: Any = None,
    mode: str = "once",
    max_pending_bytes: int = MAX_PENDING_BYTES,
) -> Application:
    """The app; its ``settings["broadcaster"]`` is the fan-out state."""
    table = routes(hub, backplane, mode, max_pending_bytes)
    app = Application(table, hub=hub, websocket_max_message_size=64 * 1024)
    b = app.settings["broadcaster"] = table[0][2]["broadcaster"]

    def register_close() -> None:
        # The runtime sets "server_thread" after the factory returns: close the
        # backplane (Redis connections) when that server stops.
        server = app.settings.get("server_thread")
        if server is not None:
            server.add_shutdown_hook(b.close)

    asyncio.get_running_loop().call_soon(register_close)
    return app


def factory(backplane_url: str | None = None, mode: str = "once") -> Callable:
    """An app factory for ``runtime.start``: ``factory("redis://...")``."""

    def build(hub: EventHub) -> Application:
        backplane = RedisBackplane(backplane_url) if backplane_url else None
        return make_app(hub, backplane, mode)

    return build


def broadcaster_of(server: Any) -> Broadcaster:
    """The ``Broadcaster`` of an in-process ``ServerThread`` running this app."""
    return server.app.settings["broadcaster"]


def set_mode(server: Any, mode: str) -> None:
    """Switch an in-process server between "naive" and "once" (on its loop)."""
    server.call(broadcaster_of(server).set_mode, mode)


def set_max_pending_bytes(server: Any, limit: int) -> None:
    """Change the slow-consumer budget of an in-process server, live."""
    if limit < 1:
        raise ValueError("max_pending_bytes must be at least 1")
    server.call(setattr, broadcaster_of(server), "max_pending_bytes", int(limit))


def stats(server: Any) -> dict[str, Any]:
    return server.call(broadcaster_of(server).health)


def main(argv: list[str] | None = None) -> None:
    from .runtime import ServerThread

    parser = argparse.ArgumentParser(
        prog="python -m servers.fanout", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--redis", default=None, help="redis://host:port/0 to use the backplane")
    parser.add_argument("--mode", choices=MODES, default="once")
    parser.add_argument("--tick", type=float, default=0.0, help="seconds between demo events")
    args = parser.parse_args(argv)
    server = ServerThread(factory(args.redis, args.mode), name="fanout", port=args.port).start()
    b = broadcaster_of(server)
    server.call(lambda: b.started, timeout=10)  # subscribed before we say "listening"
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, on_signal)
    print(
        f"fanout listening on {server.url} pid {os.getpid()} backplane {b.backplane.name}",
        flush=True,
    )
    n = 0
    try:
        while not stop.wait(args.tick or 0.5):
            if args.tick:
                n += 1
                server.publish("tick", {"n": n})
    finally:
        # Graceful: 1001 to every client, give them a moment to leave, stop.
        server.call(b.drain)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and server.call(lambda: len(b.ws) + len(b.sse)):
            time.sleep(0.05)
        server.call(b.close)
        server.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
