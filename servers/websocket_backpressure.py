"""The room's send side: a bounded outbox per connection and the visible
slow-consumer policy.

Only one write per connection is on the wire at a time: that is the
backpressure. A frame the kernel takes whole is done at once (an idle
client, the usual case in a broadcast); a frame it cannot take leaves a
pending write, and what comes behind it waits in the connection's outbox.
When more than ``send_queue`` messages wait, the client is sent
``room.slow_consumer`` and closed with 1013 (try again later): it resumes
with ``after=`` and the fan-out to everyone else never waits for it.

Events are written as frames built once per event and shared by every
member (``servers.wsframes``), written by ``send_frame``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

from .close_codes import CloseCode
from .events import Event
from .websocket_strict import StrictProtocol
from .wsframes import encode_text_frame, send_bytes


def mark_retrieved(future: asyncio.Future) -> None:
    """Read a finished write's outcome, so a write that failed because the
    peer left is not reported as "Task exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


def send_frame(protocol: StrictProtocol, frame: bytes) -> asyncio.Future | None:
    """Write one complete, pre-built frame (``servers.wsframes``): the same
    bytes object for every member, no Task per write as ``write_message``
    makes. Returns the pending write's Future if the kernel did not take it
    all, else None."""
    if protocol.is_closing():
        raise WebSocketClosedError()
    # Private, no public accessor: set only if permessage-deflate was
    # negotiated (StrictHandler never does), and then a frame is per client.
    if protocol._compressor is not None:
        raise RuntimeError("a pre-built frame cannot go to a compressed connection")
    try:
        return send_bytes(protocol.stream, frame)
    except StreamClosedError:
        raise WebSocketClosedError() from None


def event_frame(event: Event) -> bytes:
    """The frame every member gets for ``event``: built once, shared."""
    return encode_text_frame(event.to_json())


class BoundedOutbox:
    """Mixed into the room's handler: ``send_event`` (the hub's callback),
    ``send`` (any message, in order), ``restart_from`` (a resume)."""

    # Set by the handler: its options, stats and protocol.
    options: dict[str, Any]
    stats: Any
    protocol: StrictProtocol | None

    def init_outbox(self) -> None:
        self.last_sent = 0  # highest seq written to this client
        self.queued_last = 0  # highest seq queued for it
        self.replay_until = 0  # last seq of the replay being sent
        # A list, not a deque: it is empty most of the time (writes go
        # straight out) and an empty list is 56 bytes, an empty deque ~600.
        self.outbox: list[Event | dict] = []
        self.writing: asyncio.Future | None = None  # the last write handed to Tornado
        self.drain_pending = False  # a callback will send the rest of the outbox
        self.closing = False

    def send_event(self, event: Event) -> None:
        if event.seq <= self.queued_last:
            return  # already queued or sent (the backlog and the live feed overlap)
        self.queued_last = event.seq
        if not self.outbox and self.writing is None and not self.closing:
            # The usual case, and the latency path of every chat line:
            # nothing queued ahead and no write pending, so the frame goes
            # to the socket now, without the outbox round trip.
            self._write_event(event)
            return
        self.send(event)

    def restart_from(self, after: int, replay: list[Event]) -> None:
        """A resume moves the cursor: what is queued gets replaced by the
        replay from ``after`` (control messages stay)."""
        self.last_sent = self.queued_last = after
        self.outbox = [m for m in self.outbox if not isinstance(m, Event)]
        self.replay_until = replay[-1].seq if replay else after
        for event in replay:
            self.send_event(event)

    def send(self, message: Event | dict) -> None:
        """Send ``message`` (an event or a control dict) after what is waiting."""
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
        notice.add_done_callback(mark_retrieved)
        self.close(CloseCode.TRY_AGAIN_LATER, "slow consumer: reconnect and resume")

    def _send_next(self, _done: asyncio.Future | None = None) -> None:
        """Write queued messages, one write on the wire at a time. Messages
        behind a pending write wait in the bounded outbox (where the
        slow-consumer policy can see them) and that write's completion
        drains them."""
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
            self.writing = send_frame(self.protocol, frame)
        except WebSocketClosedError:
            self.writing = None
            self.closing = True  # on_close follows and cleans up
            return
        if self.writing is not None:
            self.writing.add_done_callback(
                mark_retrieved
            )  # a write cut off by a close is not an error

    def close_outbox(self) -> None:
        self.closing = True
        self.outbox.clear()
