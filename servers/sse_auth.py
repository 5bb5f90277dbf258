"""What a private SSE stream adds: short-lived signed tokens (notebook 03).

A browser's ``EventSource`` cannot send an ``Authorization`` header, so
``/stream/sse/private`` takes a token from a cookie or ``?token=``. ``POST
/stream/token`` issues one, only for the demo password ``feed.password``
(none set: no tokens), a stand-in for a real login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import Any

from tornado.web import HTTPError, RequestHandler

from .common import JSONErrorsMixin
from .cursor import parse_number


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


def check_auth(handler: RequestHandler, auth: StreamAuth) -> str:
    """The user of the request's token (cookie, else ``?token=``); 401 otherwise."""
    token = handler.get_cookie(StreamAuth.cookie_name) or handler.get_query_argument("token", None)
    try:
        return auth.verify(token)
    except PermissionError as exc:
        raise HTTPError(401, str(exc)) from None


class TokenHandler(JSONErrorsMixin, RequestHandler):
    """``POST /stream/token`` with form fields ``user`` and ``password``: a
    short-lived stream token, also set as an HttpOnly cookie.

    The password (``feed.password``, one for everybody) stands in for a real
    login so the private stream is not open to anyone who asks; a real app
    issues the token to a user it has authenticated. It travels in the body,
    never the URL (URLs end up in logs, as notebook 03 shows)."""

    def initialize(self, feed: Any) -> None:
        self.feed = feed

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
