"""Standard Webhooks v1 signatures: sign on the provider, verify on the receiver.

Three headers travel with every delivery:

* ``webhook-id``: the message id. It stays the same on every retry, so it is
  the receiver's idempotency key.
* ``webhook-timestamp``: integer Unix seconds of *this attempt* (a retry is
  signed again with a fresh timestamp, so a retry hours later still passes
  the receiver's 5-minute tolerance).
* ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256>`` entries.
  Several entries let a provider sign with the old and the new secret while
  a secret is being rotated; the receiver accepts if any one matches.

The signed content is the exact bytes ``{id}.{timestamp}.{body}``. The body
is the raw request body: parse it only *after* verifying, because
re-serialising JSON changes bytes (spacing, key order) and breaks the check.

Secrets are shown as ``whsec_`` + base64 of 24 to 64 random bytes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Iterable, Mapping

from ..cursor import CursorError, parse_number

SECRET_PREFIX = "whsec_"
TOLERANCE_S = 5 * 60  # the reference libraries' window, in both directions
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)


class VerificationError(Exception):
    """A delivery the receiver must refuse. ``status`` is the HTTP answer:
    400 for a request that is malformed, 401 for one that is not authentic."""

    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MissingHeaderError(VerificationError):
    status = 400


class MalformedHeaderError(VerificationError):
    status = 400


class StaleTimestampError(VerificationError):
    status = 401


class BadSignatureError(VerificationError):
    status = 401


def generate_secret(nbytes: int = 32) -> str:
    """A fresh ``whsec_...`` secret from the OS's random generator."""
    if not MIN_SECRET_BYTES <= nbytes <= MAX_SECRET_BYTES:
        raise ValueError(f"a secret has {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes")
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(nbytes)).decode("ascii")


@functools.lru_cache(maxsize=1024)
def decode_secret(secret: str | bytes) -> bytes:
    """The key bytes of a ``whsec_`` secret (raw bytes pass through)."""
    if isinstance(secret, bytes):
        key = secret
    else:
        text = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a webhook secret is 'whsec_' followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
            f"this one holds {len(key)}"
        )
    return key


def _as_list(secrets: str | bytes | Iterable[str | bytes]) -> list[bytes]:
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    keys = [decode_secret(s) for s in secrets]
    if not keys:
        raise ValueError("at least one secret is needed")
    return keys


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The exact bytes that are signed: ``{id}.{timestamp}.{body}``."""
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    mac = hmac.new(decode_secret(secret), signed_content(msg_id, timestamp, body), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def sign_headers(
    secrets: str | bytes | Iterable[str | bytes],
    msg_id: str,
    body: bytes,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The three headers for one attempt; one signature per secret (rotation)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    content = signed_content(msg_id, ts, body)
    sigs = [
        "v1," + base64.b64encode(hmac.new(k, content, hashlib.sha256).digest()).decode("ascii")
        for k in _as_list(secrets)
    ]
    return {HEADER_ID: msg_id, HEADER_TIMESTAMP: str(ts), HEADER_SIGNATURE: " ".join(sigs)}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # HTTP header names are case-insensitive; tornado's HTTPHeaders already
    # is, a plain dict is not.
    value = headers.get(name)
    if value is None:
        for key, val in headers.items():
            if key.lower() == name:
                return val
    return value


def _parse_timestamp(text: str) -> int:
    """Integer Unix seconds, by the collection's one rule for client numbers
    (``servers.cursor.parse_number``): ASCII digits only, at most 18 of them.
    ``str.isdigit()`` would let ``²`` through to ``int()`` (a 500), and a
    400-digit number overflows the float arithmetic of the window check."""
    try:
        return parse_number(text.strip(), HEADER_TIMESTAMP)
    except CursorError as exc:
        raise MalformedHeaderError(f"{exc}: not integer Unix seconds") from None


def verify(
    secrets: str | bytes | Iterable[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: float = TOLERANCE_S,
) -> str:
    """Check one delivery; return its ``webhook-id`` or raise ``VerificationError``.

    Order matters: headers first (400 if missing or malformed), then the
    timestamp window (401: a replay of an old message, or a clock far off),
    then the signature, compared in constant time against every secret.
    """
    msg_id = _header(headers, HEADER_ID)
    ts_text = _header(headers, HEADER_TIMESTAMP)
    sig_text = _header(headers, HEADER_SIGNATURE)
    missing = [
        n
        for n, v in ((HEADER_ID, msg_id), (HEADER_TIMESTAMP, ts_text), (HEADER_SIGNATURE, sig_text))
        if not v
    ]
    if missing:
        raise MissingHeaderError(f"missing header(s): {', '.join(missing)}")
    assert msg_id is not None and ts_text is not None and sig_text is not None
    timestamp = _parse_timestamp(ts_text)
    now = time.time() if now is None else now
    if timestamp < now - tolerance:
        raise StaleTimestampError(
            f"webhook-timestamp is {now - timestamp:.0f} s old (tolerance {tolerance:.0f} s): "
            "a replayed message, or a badly wrong clock"
        )
    if timestamp > now + tolerance:
        raise StaleTimestampError(
            f"webhook-timestamp is {timestamp - now:.0f} s in the future"
            f" (tolerance {tolerance:.0f} s)"
        )
    candidates: list[bytes] = []
    for entry in sig_text.split(" "):
        if not entry:
            continue
        version, sep, b64 = entry.partition(",")
        if not sep:
            raise MalformedHeaderError(f"signature entry {entry[:20]!r} is not 'v1,<base64>'")
        if version != "v1":
            continue  # an unknown scheme (e.g. v1a, asymmetric) is skipped, not an error
        try:
            candidates.append(base64.b64decode(b64, validate=True))
        except (binascii.Error, ValueError):
            raise MalformedHeaderError(f"signature {b64[:20]!r} is not base64") from None
    if not candidates:
        raise MalformedHeaderError("webhook-signature holds no v1 signature")
    content = signed_content(msg_id, timestamp, body)
    matched = False
    for key in _as_list(secrets):
        expected = hmac.new(key, content, hashlib.sha256).digest()
        for candidate in candidates:
            # compare_digest takes the same time wherever the first differing
            # byte is, so an attacker cannot guess a signature byte by byte.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise BadSignatureError(
            "no signature matches: wrong secret, or the body or headers were altered"
        )
    return msg_id
