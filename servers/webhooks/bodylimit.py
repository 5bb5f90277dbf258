"""Refuse an oversized request body while it is being read, not after.

A plain Tornado handler sees ``self.request.body`` only once the whole body
is in memory: a 30 MiB POST to an endpoint that accepts 64 KiB cost the
server +27 MiB (+63 MiB sent chunked) before the 413. With
``@stream_request_body`` the body arrives piece by piece in
``data_received``; ``BodyLimitMixin`` keeps at most ``limit`` bytes of it
and answers 413 with a JSON reason:

* a ``Content-Length`` above the limit is refused from the headers alone,
  before one body byte is read;
* a chunked body is counted as it arrives, and refused once it passes the
  limit.

How the connection ends: an HTTP client that sends its whole body before
reading the answer (``requests`` does) would see "connection reset" instead
of our 413 if the server closed with body bytes still unread. So a body up
to ``DRAIN_BYTES`` over the limit is read to its end and thrown away, then
answered; anything bigger is answered at once and the connection closed
(Tornado closes it as soon as the answer is written, since the body was not
read). Either way at most ``limit`` bytes are ever kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

DEFAULT_LIMIT = 64 * 1024
DRAIN_BYTES = 1024 * 1024  # read and drop up to this much beyond the limit
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


class BodyLimitMixin:
    """For a ``@stream_request_body`` handler: ``self.body`` holds the body
    (at most ``body_limit()`` bytes) once ``post()`` runs. Override
    ``answer_too_large`` to answer the refusal your own way."""

    def body_limit(self) -> int:
        return DEFAULT_LIMIT

    def answer_too_large(self: Any, reason: str) -> None:
        self.set_status(413)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason, "status": 413}))

    @property
    def body(self) -> bytes:
        return bytes(self._body)

    @property
    def body_too_large(self) -> bool:
        """True when the body passed the limit and was thrown away (answer 413)."""
        return self._received > self.body_limit()

    def too_large_reason(self) -> str:
        return f"body of {self._received} bytes exceeds {self.body_limit()}"

    def prepare(self: Any) -> None:
        self._body = bytearray()
        self._received = 0
        limit = self.body_limit()
        declared = self.request.headers.get("Content-Length")
        if declared is not None and _CONTENT_LENGTH.fullmatch(declared):
            size = int(declared)
            if size > limit + DRAIN_BYTES:
                # Refused from the headers: no body byte is read. Tornado
                # closes the connection once this answer is written.
                self.request.connection.set_max_body_size(size)  # no second, bare 400
                self._received = size
                return self.answer_too_large(f"body of {size} bytes exceeds {limit}")
        # The hard cap below which our own count always answers first; a
        # body past it (e.g. one huge chunk) gets Tornado's bare 400 and a
        # closed connection. (A malformed Content-Length is Tornado's 400 too.)
        self.request.connection.set_max_body_size(limit + 2 * DRAIN_BYTES)

    def data_received(self: Any, chunk: bytes) -> None:
        # Tornado's RequestHandler keeps "finish() was called" only in the
        # private ``_finished`` (no public accessor); a chunk can still arrive
        # after our 413 went out. tests/test_webhooks_bodylimit.py checks it exists.
        if self._finished:
            return
        self._received += len(chunk)
        limit = self.body_limit()
        if self._received <= limit:
            self._body += chunk
            return
        self._body = bytearray()  # over the limit: keep nothing
        if self._received > limit + DRAIN_BYTES:
            # Still coming (chunked, no length announced): answer now.
            self.answer_too_large(f"body of more than {limit + DRAIN_BYTES} bytes exceeds {limit}")
