"""What the room checks before it acts: who you are, where the page is, how
fast you send, what you sent.

* ``authenticate``: a bearer token against the room's table, in constant
  time (missing -> 401, unknown -> 403), for the WebSocket handshake and
  ``POST /room/say`` alike;
* ``require_allowed_origin`` (``OriginAllowlist``, ``origin_refusal``): ``Origin``
  against an exact allowlist, never against ``Host`` (cross-site WebSocket
  hijacking, DNS rebinding);
* ``TokenBucket``: the per-connection (and per-user, over HTTP) rate limit;
* ``parse_message`` / ``validate_say``: a chat line is a JSON object with a
  non-blank ``text`` of at most ``max_text`` characters and an optional
  ``ref`` of at most 64; anything else is a ``MessageError`` whose text is
  the reason sent back (``room.error``, or HTTP 400).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from tornado.httputil import HTTPServerRequest
from tornado.web import HTTPError


def bearer_token(request: HTTPServerRequest, default: str | None = None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``default``."""
    auth = request.headers.get("Authorization", "")
    return auth[len("Bearer ") :] if auth.startswith("Bearer ") else default


def authenticate(tokens: dict[str, str], token: str | None, how: str) -> str:
    """The user ``token`` names, or ``HTTPError`` 401 (none; ``how`` says how
    to send one) or 403 (unknown)."""
    if not token:
        raise HTTPError(401, f"missing token: send {how}")
    # Compare in constant time, so response timing does not leak how much
    # of a guessed token was right.
    user = None
    for known, name in tokens.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            user = name
    if user is None:
        raise HTTPError(403, "unknown token")
    return user


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


def own_origins(request: HTTPServerRequest) -> tuple[str, ...]:
    """This server's origin, from the socket it accepted on: never from ``Host``."""
    # HTTP1Connection.stream is the accepted socket's IOStream; Tornado has
    # no public accessor for the local address.
    host, port = request.connection.stream.socket.getsockname()[:2]
    scheme = request.protocol  # https when the server itself speaks TLS
    named = f"[{host}]" if ":" in host else host  # an IPv6 literal in a URL
    loopback = (f"{scheme}://localhost:{port}",) if host in ("127.0.0.1", "::1") else ()
    return (f"{scheme}://{named}:{port}", *loopback)


def require_allowed_origin(request: HTTPServerRequest, allowed: OriginAllowlist) -> None:
    """``HTTPError`` 403 unless ``origin_refusal`` lets this handshake in."""
    refusal = origin_refusal(request.headers.get("Origin"), allowed, own_origins(request))
    if refusal:
        raise HTTPError(403, refusal)


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
NOT_AN_OBJECT = 'expected an object with a "type", e.g. {"type": "say", "text": "hi"}'


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
        raise MessageError(NOT_AN_OBJECT)
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
