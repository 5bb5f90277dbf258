"""``POST /room/say``: the room's chat line as one HTTP request.

For comparing a request per message with a frame per message. The room's
guards, each as HTTP: the token (401/403), a rate limit per user (429, the
room's ``rate`` and ``burst``), the room's ``max_message_size`` as the body
limit (413: at most that much is kept; a body declared larger than
``SAY_DRAIN_MAX`` is refused before it is read), then ``validate_say`` (400
with the reason). An accepted line goes through ``hub.publish`` like a
frame on the socket, and the answer is its event.
"""

from __future__ import annotations

import math
from typing import Any

from tornado.web import HTTPError, RequestHandler, stream_request_body

from .common import JSONErrorsMixin
from .cursor import parse_number
from .hub import EventHub
from .websocket_guards import (
    MessageError,
    TokenBucket,
    authenticate,
    bearer_token,
    parse_message,
    validate_say,
)

# POST /room/say reads and drops a body over the limit up to this size, then
# answers 413 on a connection that stays usable; a client that stops
# sending to read an early answer is rare, and closing on it with unread
# bytes makes the kernel reset the connection, often before the client has
# read the 413. Beyond this, reading costs more than a reset: 413 at once.
SAY_DRAIN_MAX = 1024 * 1024


@stream_request_body
class SayHandler(JSONErrorsMixin, RequestHandler):
    """``POST /room/say`` with ``{"text": ..., "ref": ...}`` and a bearer token."""

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
        user = authenticate(
            self.options["tokens"], bearer_token(self.request), "Authorization: Bearer <token>"
        )
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

    def _bucket(self, user: str) -> TokenBucket:
        """The user's rate limit, shared by all their requests (the tokens
        table bounds how many users there are)."""
        bucket = self.buckets.get(user)
        if bucket is None:
            bucket = self.buckets[user] = TokenBucket(self.options["rate"], self.options["burst"])
        return bucket
