"""Where fan-out's events come from: a pluggable backplane (``servers.fanout``).

With ``InMemoryBackplane`` (the default) an event reaches the clients of this
process only. With ``RedisBackplane`` every process PUBLISHes to one Redis
channel and SUBSCRIBEs to it, and fans out locally what it hears, so an event
published on server A reaches the clients of server B.

Resume across processes only works if the numbers mean the same thing
everywhere: with Redis a Lua script INCRements one counter and PUBLISHes in
a single atomic step, so the sequence is global: seq 7 names the same event
in every process, and a client of a crashed server can resume on any
survivor. (Numbering per process would make seq 7 on A and seq 7 on B
different events.) Redis pub/sub itself is at-most-once: a process that was
not subscribed when a message went out (starting, reconnecting) never gets
it, so its log can have holes (``EventLog.add`` keeps a jump in the numbers
as is), and a client resuming there gets the events around a hole and can
tell only from the numbers that some are missing. Redis Streams (XADD/XREAD) keep the
messages and would close that gap; this lesson keeps pub/sub.

Anyone who can reach Redis can PUBLISH on the channel: what arrives is
input, checked like any other (``servers.events.check_event_type``: a type
with a CR or LF would forge SSE fields). A malformed message is dropped and
counted, with a rate-limited log line, and the subscriber keeps listening.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from .cursor import parse_number
from .events import Event, EventLog, check_event_type

DROP_LOG_EVERY_S = 10.0  # at most one log line this often about dropped backplane messages

log = logging.getLogger(__name__)


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


class BackplaneLink:
    """How a ``servers.fanout.Broadcaster`` (which sets ``hub``, ``backplane``,
    ``log``, ``deliver`` and ``_task``) joins its backplane and leaves it."""

    hub: Any
    backplane: Any
    log: EventLog
    deliver: Deliver
    _task: asyncio.Task | None = None
    started: asyncio.Task | None = None  # ``server.call(lambda: b.started)``: subscribed

    async def start(self) -> None:
        joined_at = await self.backplane.start(self.deliver)  # the global counter now
        if self.log.last_seq == 0:  # so a client that saw seq N before we started resumes here
            self.log = EventLog(self.log.capacity, self.log.max_bytes, start_at=joined_at)
        # Events published through the hub (``server.publish()`` from a
        # notebook cell, any thread) go to the backplane from here.
        sub = self.hub.subscribe(maxsize=1_000_000)
        self._task = asyncio.get_running_loop().create_task(self._forward(sub))

    async def _forward(self, sub: Any) -> None:
        in_memory = isinstance(self.backplane, InMemoryBackplane)
        while (event := await sub.get()) is not None:
            # In memory the hub's number is the global one; Redis assigns its own.
            seq = event.seq if in_memory else None
            await self.backplane.publish(event.type, event.payload, event.sent_ns, seq)

    async def publish(self, type: str, payload: dict) -> int:
        """Publish from a request handler; returns the seq clients will see."""
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

    def close_when_stopped(self, app: Any) -> None:
        """Close the backplane when the server running ``app`` stops (the
        runtime sets ``server_thread`` just after the app factory returns).
        webhooks/provider.py registers its own hook the same way; a shared
        helper would belong in servers/runtime.py (another owner)."""

        def register() -> None:
            server = app.settings.get("server_thread")
            if server is not None:
                server.add_shutdown_hook(self.close)

        asyncio.get_running_loop().call_soon(register)
