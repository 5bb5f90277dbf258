"""Server-Sent Events: the browser's built-in push stream (WHATWG HTML 9.2).

``GET /stream/sse`` answers ``200`` with ``Content-Type: text/event-stream``
and ``Cache-Control: no-cache``, then writes one block per event::

    id: 42                       <- the seq; the client echoes it back as Last-Event-ID
    event: price.tick            <- the type (EventSource: addEventListener("price.tick"))
    data: {"seq":42,...}         <- the event as JSON (several data: lines when multi-line)
                                 <- a blank line dispatches the event

plus ``retry: <ms>`` at the start (how long a client waits before
reconnecting) and ``: heartbeat`` comment lines when nothing happened for
``heartbeat`` seconds (proxies close idle connections; clients use them to
notice a dead connection).

Resume: a client that reconnects sends ``Last-Event-ID: <seq>`` (or
``?lastEventId=<seq>`` for the very first request). The server replays the
events after it from the hub's bounded log. When it cannot, it says so with
an ``event: stream.resync`` block instead of silently skipping:

* the id is older than the log holds (the client was away too long);
* the id is from the future (the server's log restarted);
* the client read too slowly and its bounded queue overflowed: the stream
  ends with a resync notice, the client reconnects and catches up from the
  log. Memory per subscriber is bounded: at most ``queue_size`` queued
  events plus one written batch; a reader that does not even drain the
  notice within ``SLOW_READER_GRACE_S`` is disconnected.

An id that is not a sequence number at all is a client bug: ``400`` with the
reason. A feed closed with ``close_feed()`` answers ``204 No Content``: the
spec's way of telling a client to stop reconnecting.

Security, shown in notebook 03: ``/stream/sse/private`` needs a short-lived
token (a cookie, or ``?token=`` because a browser's ``EventSource`` cannot
send an ``Authorization`` header), and payload fields named in
``feed.sensitive`` are masked before they go on the wire. ``POST
/stream/token`` issues tokens only for the demo password ``feed.password``
(none set: no tokens), a stand-in for a real login.

Every field the server writes is one line: ``format_event`` refuses an
``event``, ``id`` or ``retry`` holding CR or LF, and splits ``data`` on CR,
LF and CRLF. Event types are checked where events are made
(``events.check_event_type``); an event that still cannot be written is
skipped with a comment, and the stream goes on.

Run standalone: ``python -m servers.sse --port 8000`` then
``curl -N http://127.0.0.1:8000/stream/sse``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.web import Application, HTTPError, RequestHandler

from .common import JSONErrorsMixin, parse_cursor, parse_seconds
from .cursor import parse_number
from .events import Event
from .hub import EventHub, Subscription
from .streaming import encoded_cache, event_dict

log = logging.getLogger(__name__)

RESYNC = "stream.resync"
MAX_BATCH = 256  # events written per flush when a burst is queued
SLOW_READER_GRACE_S = 5.0  # after an overflow, how long the resync notice may take to drain


# The spec's line endings: CRLF, a lone LF or a lone CR (WHATWG HTML 9.2.6).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field(name: str, value: str) -> str:
    """One ``name: value`` line. A CR or LF in the value would end the line
    and start a field of the sender's choosing (``"x\\nid: 999"`` forges an
    event id): refused, never escaped or stripped, since no right value
    holds one."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"an SSE {name} cannot contain CR or LF: {value[:40]!r}")
    return f"{name}: {value}"


def format_event(
    data: str,
    event: str | None = None,
    id: str | int | None = None,
    retry: int | None = None,
) -> str:
    """One SSE block. ``data`` may hold line breaks (CRLF, LF or CR): each
    line becomes its own ``data:`` line, and the client joins them back
    with ``\\n``. ``event``, ``id`` and ``retry`` must each be one line:
    ``ValueError`` otherwise."""
    lines = []
    if id is not None:
        text = str(id)
        if "\0" in text:  # the spec ignores an id holding NUL
            raise ValueError("an SSE id cannot contain NUL")
        lines.append(_field("id", text))
    if event is not None:
        lines.append(_field("event", event))
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"an SSE retry is a whole number of ms, not {retry!r}")
        lines.append(f"retry: {retry}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return "\n".join(lines) + "\n\n"


def format_comment(text: str = "") -> str:
    """A comment line (ignored by clients): keeps the connection busy. Each
    line of ``text`` (CR, LF or CRLF) is its own comment: a bare CR would
    otherwise end the comment and start a real field."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text or "")) + "\n"


def mask(value: Any) -> str:
    """``"4111111111111111"`` -> ``"••••1111"``: enough to recognise, not to use."""
    text = str(value)
    return "••••" + text[-4:] if len(text) > 4 else "••••"


class StreamAuth:
    """Short-lived, signed stream tokens: ``<user>.<expires>.<hmac>``.

    A token in a URL ends up in access logs, browser history and proxies:
    keep its life short (seconds to minutes) and scope it to the stream, so a
    leaked one is worth little. A cookie is not in the URL, so it is not
    logged.
    """

    cookie_name = "stream_session"
    # User names go into the token, a cookie and logs: letters, digits, "_"
    # and "-" only ("." separates the token's parts).
    USER = re.compile(r"[A-Za-z0-9_-]{1,64}")

    def __init__(self, secret: bytes | None = None, ttl_s: float = 60.0) -> None:
        self.secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s

    def _sign(self, body: str) -> str:
        digest = hmac.new(self.secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, user: str, ttl_s: float | None = None, now: float | None = None) -> str:
        if not isinstance(user, str) or self.USER.fullmatch(user) is None:
            shown = repr(user) if len(repr(user)) <= 40 else repr(user)[:40] + "..."
            raise ValueError(f"user {shown} is not 1-64 characters of A-Z a-z 0-9 _ -")
        expires = int((now or time.time()) + (self.ttl_s if ttl_s is None else ttl_s))
        body = f"{user}.{expires}"
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str | None, now: float | None = None) -> str:
        """The user the token was issued to; ``PermissionError`` with the reason otherwise."""
        if not token:
            raise PermissionError("no token: send the stream_session cookie or ?token=")
        parts = token.split(".")
        if len(parts) != 3:
            raise PermissionError("malformed token")
        user, expires, signature = parts
        # As bytes: compare_digest refuses (TypeError) a str with non-ASCII.
        expected = self._sign(f"{user}.{expires}").encode()
        if not hmac.compare_digest(signature.encode(), expected):
            raise PermissionError("bad token signature")
        try:
            expired = parse_number(expires, "expires") < (now or time.time())
        except ValueError:
            expired = True  # signed by us, so never; but no traceback if it were
        if expired:
            raise PermissionError("token expired: ask for a fresh one")
        return user


@dataclass
class SSEFeed:
    """The settings of one hub's SSE endpoints, changed live from a notebook.

    Plain attributes, read by the handlers on every loop turn, so setting
    ``feed.heartbeat_s = 0.5`` from a slider takes effect at once.
    """

    heartbeat_s: float = 15.0
    retry_ms: int = 1000
    queue_size: int = 1000
    closed: bool = False
    sensitive: set[str] = field(default_factory=lambda: {"card_number", "email"})
    auth: StreamAuth = field(default_factory=StreamAuth)
    # POST /stream/token issues tokens only to a client that sends this
    # password: a demo stand-in for a real login. None: no tokens at all.
    password: str | None = None
    heartbeats_sent: int = 0
    resyncs_sent: int = 0
    overflows: int = 0
    unencodable: int = 0  # events skipped because they cannot be written as SSE
    handlers: weakref.WeakSet = field(default_factory=weakref.WeakSet, repr=False)


_feeds: weakref.WeakKeyDictionary[EventHub, SSEFeed] = weakref.WeakKeyDictionary()
_feeds_lock = threading.Lock()


def feed_of(hub: EventHub) -> SSEFeed:
    """The one ``SSEFeed`` of this hub (created on first use)."""
    with _feeds_lock:
        feed = _feeds.get(hub)
        if feed is None:
            feed = _feeds[hub] = SSEFeed()
        return feed


class SSEHandler(JSONErrorsMixin, RequestHandler):
    """An endless ``text/event-stream`` response: replay after Last-Event-ID, then live."""

    def initialize(self, hub: EventHub, private: bool = False) -> None:
        self.hub = hub
        self.feed = feed_of(hub)
        self.private = private
        self.subscription: Subscription | None = None

    # -- reading the request ---------------------------------------------------
    def last_event_id(self) -> int | None:
        raw = self.request.headers.get("Last-Event-ID")
        source = "Last-Event-ID"
        if raw is None:
            raw, source = self.get_query_argument("lastEventId", None), "lastEventId"
        if raw is None or raw.strip() == "":
            # A fresh client. Blank is the spec's "no last event id" (an empty
            # id: field resets it), so it is not an error here.
            return None
        try:
            return parse_number(raw.strip(), source)
        except ValueError as exc:
            raise HTTPError(400, f"{exc} (ids here are whole numbers >= 0)") from None

    def check_auth(self) -> str:
        token = self.get_cookie(StreamAuth.cookie_name) or self.get_query_argument("token", None)
        try:
            return self.feed.auth.verify(token)
        except PermissionError as exc:
            raise HTTPError(401, str(exc)) from None

    # -- writing -----------------------------------------------------------------
    def public_payload(self, event: Event) -> dict:
        data = event_dict(event)
        if self.feed.sensitive & data["payload"].keys():
            data["payload"] = {
                k: mask(v) if k in self.feed.sensitive else v for k, v in data["payload"].items()
            }
        return data

    def encode(self, event: Event) -> bytes:
        indent = 2 if self.pretty else None
        separators = None if self.pretty else (",", ":")
        data = self.public_payload(event)
        # text/event-stream is always UTF-8: no need to escape non-ASCII...
        text = json.dumps(data, indent=indent, separators=separators, ensure_ascii=False)
        try:
            block = format_event(text, event=event.type, id=event.seq).encode()
        except UnicodeEncodeError:
            # ...unless a string holds a lone surrogate ("\ud800"), which
            # has no UTF-8 form: escaped as JSON does by default, it arrives.
            text = json.dumps(data, indent=indent, separators=separators)
            block = format_event(text, event=event.type, id=event.seq).encode()
        return block

    def write_event(self, event: Event) -> None:
        # Encoded once per event (and format), shared by every subscriber.
        fmt = ("sse", self.pretty, tuple(sorted(self.feed.sensitive)))
        try:
            block = self.cache.get(event, fmt, self.encode)
        except ValueError as exc:
            # Events are checked where they are made (check_event_type), so
            # this is a bug elsewhere. One such event must not end every
            # live stream, nor every resume from before it: skip it, saying
            # so in a comment (a comment cannot forge anything).
            self.feed.unencodable += 1
            log.warning("event %d skipped on the SSE stream: %s", event.seq, exc)
            self.write(format_comment(f"event {event.seq} skipped: cannot be sent as SSE"))
            return
        self.write(block)
        self.sent += 1

    def write_resync(self, reason: str, **details: Any) -> None:
        self.feed.resyncs_sent += 1
        body = {"reason": reason, **details, "last_seq": self.hub.log.last_seq}
        self.write(format_event(json.dumps(body, separators=(",", ":")), event=RESYNC))

    # -- the stream --------------------------------------------------------------
    async def get(self) -> None:
        if self.feed.closed:
            # 204: "this feed is over, stop reconnecting" (the spec's way).
            self.set_status(204)
            self.finish()
            return
        if self.private:
            self.check_auth()
        last_id = self.last_event_id()
        heartbeat = parse_seconds(self, "heartbeat", -1, 0, 3600)
        self.limit = parse_cursor(self, "limit")  # 0: endless
        self.pretty = self.get_query_argument("pretty", "0") not in ("0", "", "false")
        self.cache = encoded_cache(self)
        self.sent = 0

        # Subscribe before reading the backlog, so nothing published in
        # between falls into a gap; duplicates are skipped by seq below.
        self.subscription = self.hub.subscribe(self.feed.queue_size)
        self.feed.handlers.add(self)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer this response
        self.write(f"retry: {int(self.feed.retry_ms)}\n\n")
        last_seq = self.hub.log.last_seq
        if last_id is None:
            last, backlog = last_seq, []
        elif last_id > last_seq:
            self.write_resync(
                "Last-Event-ID is from the future (this server's log restarted?)",
                last_event_id=last_id,
                continue_after=last_seq,
            )
            last, backlog = last_seq, []
        else:
            backlog, truncated = self.hub.log.since(last_id)
            last = last_id
            if truncated:
                self.write_resync(
                    "Last-Event-ID is older than the replay buffer: some events are gone, "
                    "reload the current state",
                    last_event_id=last_id,
                    oldest_available=backlog[0].seq if backlog else last_seq + 1,
                    continue_after=(backlog[0].seq - 1) if backlog else last_seq,
                )
        try:
            for event in backlog:
                self.write_event(event)
                last = event.seq
                if self.limit and self.sent >= self.limit:
                    break
            await self.flush()  # headers, retry and backlog go out now
            if self.limit and self.sent >= self.limit:
                return
            await self.pump(last, heartbeat)
        except StreamClosedError:
            pass  # the client went away mid-write; on_connection_close cleans up
        finally:
            self.subscription.close()

    async def pump(self, last: int, heartbeat: float) -> None:
        sub = self.subscription
        assert sub is not None
        while True:
            interval = heartbeat if heartbeat >= 0 else self.feed.heartbeat_s
            try:
                if interval > 0:
                    event = await asyncio.wait_for(sub.get(), interval)
                else:
                    event = await sub.get()
            except asyncio.TimeoutError:
                self.write(format_comment("heartbeat"))
                self.feed.heartbeats_sent += 1
                await self.send()
                continue
            if event is None:
                break
            batch = [event]
            # Under load, write what is already queued in one flush: fewer
            # syscalls, same order, no added latency when idle.
            while len(batch) < MAX_BATCH and not sub.queue.empty():
                batch.append(sub.queue.get_nowait())
            for item in batch:
                if item is None:
                    break
                if item.seq <= last:
                    continue
                self.write_event(item)
                last = item.seq
                if self.limit and self.sent >= self.limit:
                    await self.send()
                    return
            await self.send()
            if batch[-1] is None:
                break
        if sub.overflowed:
            self.feed.overflows += 1
            self.write_resync(
                f"client too slow: more than {sub.maxsize} events queued",
                continue_after=last,
            )
            # End the response and the connection (the client reconnects on a
            # fresh one). A reader that does not take even this within the
            # grace period loses the notice: the unread bytes must not sit in
            # the server's write buffer for as long as it stays connected.
            finished = asyncio.ensure_future(self.finish())
            await asyncio.wait({finished}, timeout=SLOW_READER_GRACE_S)
            stream = getattr(self.request.connection, "stream", None)
            if stream is not None:
                stream.close()

    async def send(self) -> None:
        """``flush()``, but a reader whose queue overflowed and who still does
        not drain what was written within ``SLOW_READER_GRACE_S`` is
        disconnected: the server never holds more than one batch for it."""
        pending = self.flush()
        if pending.done():  # the usual case: the socket took it all at once
            return pending.result()
        while True:
            done, _ = await asyncio.wait({pending}, timeout=SLOW_READER_GRACE_S)
            if done:
                return pending.result()
            if self.subscription is not None and self.subscription.overflowed:
                self.request.connection.stream.close()
                raise StreamClosedError()

    def on_connection_close(self) -> None:
        # Wakes get() above, so the coroutine ends instead of waiting forever.
        if self.subscription is not None:
            self.subscription.close()

    def on_finish(self) -> None:
        self.feed.handlers.discard(self)

    def end_stream(self) -> None:
        """End this response (the client may reconnect). Loop thread only."""
        if self.subscription is not None:
            self.subscription.close()


class TokenHandler(JSONErrorsMixin, RequestHandler):
    """``POST /stream/token`` with form fields ``user`` and ``password``: a
    short-lived stream token, also set as an HttpOnly cookie.

    The password (``feed.password``, one for everybody) stands in for a real
    login so the private stream is not open to anyone who asks; a real app
    issues the token to a user it has authenticated. It travels in the body,
    never the URL (URLs end up in logs, as notebook 03 shows)."""

    def initialize(self, hub: EventHub) -> None:
        self.feed = feed_of(hub)

    def post(self) -> None:
        self.check_password()
        user = self.get_argument("user", "learner")  # the form body, or the URL
        try:
            token = self.feed.auth.issue(user)
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        self.set_cookie(
            StreamAuth.cookie_name, token, httponly=True, samesite="Strict", path="/stream"
        )
        self.set_header("Cache-Control", "no-store")
        self.finish({"token": token, "expires_in_s": self.feed.auth.ttl_s})

    def check_password(self) -> None:
        expected = self.feed.password
        if expected is None:
            raise HTTPError(403, "no tokens: this feed has no password set (feed.password)")
        if self.get_query_argument("password", None) is not None:
            raise HTTPError(401, "send the password in the POST body, never in the URL")
        given = self.get_body_argument("password", None)
        if given is None:
            raise HTTPError(401, "missing password: POST it as a form field")
        # Compared in constant time, so timing does not leak how much was right.
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPError(401, "wrong password")


def close_feed(hub: EventHub) -> int:
    """Close the feed: end open streams, answer 204 from now on. Loop thread
    only (use ``server.call(sse.close_feed, server.hub)``). Returns how many
    streams were ended."""
    feed = feed_of(hub)
    feed.closed = True
    handlers = list(feed.handlers)
    for handler in handlers:
        handler.end_stream()
    return len(handlers)


def end_streams(hub: EventHub) -> int:
    """End every open SSE response without closing the feed (clients
    reconnect with Last-Event-ID). Loop thread only."""
    handlers = list(feed_of(hub).handlers)
    for handler in handlers:
        handler.end_stream()
    return len(handlers)


def routes(hub: EventHub) -> list:
    return [
        (r"/stream/sse", SSEHandler, {"hub": hub}),
        (r"/stream/sse/private", SSEHandler, {"hub": hub, "private": True}),
        (r"/stream/token", TokenHandler, {"hub": hub}),
    ]


def make_app(hub: EventHub) -> Application:
    return Application(routes(hub), hub=hub)


if __name__ == "__main__":
    from .runtime import main

    main(make_app, "sse", __doc__.splitlines()[0])
