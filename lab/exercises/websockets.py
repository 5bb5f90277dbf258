"""Checkers for notebook 02's exercises (WebSockets)."""

from __future__ import annotations

import base64
import hashlib
import random
import statistics
from collections.abc import Callable

import websocket  # websocket-client
from tornado.web import Application
from tornado.websocket import WebSocketHandler

from lab.wire.websocket import accept_value, encode_frame
from servers import runtime
from servers.websocket_strict import quiet_log

from . import Feedback

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def check_accept(fn: Callable[[str], str], live_handshake=None) -> Feedback:
    """Exercise 1: ``fn(key)`` returns ``Sec-WebSocket-Accept`` for a key.

    ``live_handshake``: optional ``(key, accept)`` seen on a real handshake
    with the room, to show the learner's function agrees with Tornado's.
    """
    fb = Feedback("Exercise 1: compute Sec-WebSocket-Accept")
    try:
        got = fn(RFC_KEY)
    except Exception as exc:
        return fb.fail(f"accept({RFC_KEY!r}) raised {exc!r}")
    if isinstance(got, bytes):
        return fb.fail("return a str (the header value), not bytes: add .decode('ascii')")
    if not isinstance(got, str):
        return fb.fail(f"return a str, got {type(got).__name__}")
    key_bytes = RFC_KEY.encode()
    near_misses = {
        hashlib.sha1(key_bytes + GUID.encode()).hexdigest(): (
            "that is the hex digest: base64-encode the 20 raw bytes of .digest() instead"
        ),
        base64.b64encode(hashlib.sha1(key_bytes).digest()).decode(): (
            f"the GUID is missing: hash key + {GUID!r}"
        ),
        base64.b64encode(
            hashlib.sha1(base64.b64decode(RFC_KEY) + GUID.encode()).digest()
        ).decode(): ("do not base64-decode the key: concatenate the key *string* as sent"),
        base64.b64encode(hashlib.sha256(key_bytes + GUID.encode()).digest()).decode(): (
            "RFC 6455 uses SHA-1 here, not SHA-256"
        ),
    }
    if got != RFC_ACCEPT:
        hint = near_misses.get(got.strip(), "compare with base64(sha1(key + GUID)) step by step")
        return fb.fail(
            f"for the RFC example key you returned {got!r}, expected {RFC_ACCEPT!r}: {hint}"
        )
    rng = random.Random(6455)
    for _ in range(20):
        key = base64.b64encode(rng.randbytes(16)).decode()
        if fn(key) != accept_value(key):
            return fb.fail(f"right for the RFC example but wrong for key {key!r}: hard-coded?")
    fb.note("matches the RFC 6455 example and 20 random keys")
    if live_handshake is not None:
        key, accept = live_handshake
        if fn(key) == accept:
            fb.note(f"and the live server's answer to key {key}: {accept}")
        else:
            fb.fail(f"the live server answered {accept} for key {key}, you computed {fn(key)}")
    return fb


def check_decode_header(fn: Callable[[bytes], dict]) -> Feedback:
    """Exercise 2: ``fn(data)`` decodes the header of the frame at the start
    of ``data``: a dict with ``fin``, ``opcode``, ``masked``, ``length``,
    ``mask_key`` (bytes or None) and ``header_len``."""
    fb = Feedback("Exercise 2: decode a frame header")
    key = bytes.fromhex("37fa213d")
    cases = [
        ("the RFC's masked 'Hello'", bytes.fromhex("818537fa213d7f9f4d5158"),
         dict(fin=True, opcode=1, masked=True, length=5, mask_key=key, header_len=6)),
        ("the RFC's unmasked 'Hello'", bytes.fromhex("810548656c6c6f"),
         dict(fin=True, opcode=1, masked=False, length=5, mask_key=None, header_len=2)),
        ("a first fragment (FIN=0)", encode_frame(0x1, b"Hel", masked=False, fin=False),
         dict(fin=False, opcode=1, masked=False, length=3, mask_key=None, header_len=2)),
        ("a close frame", encode_frame(0x8, b"\x03\xe8", masked=True, key=key),
         dict(fin=True, opcode=8, masked=True, length=2, mask_key=key, header_len=6)),
        ("a 300-byte binary frame (16-bit length)",
         encode_frame(0x2, b"x" * 300, masked=True, key=key),
         dict(fin=True, opcode=2, masked=True, length=300, mask_key=key, header_len=8)),
        ("a 70,000-byte frame (64-bit length)", encode_frame(0x2, b"x" * 70_000, masked=False),
         dict(fin=True, opcode=2, masked=False, length=70_000, mask_key=None, header_len=10)),
    ]  # fmt: skip
    hints = {
        "fin": "FIN is the top bit of byte 0: byte0 >> 7",
        "opcode": "the opcode is the low 4 bits of byte 0: byte0 & 0x0F",
        "masked": "MASK is the top bit of byte 1",
        "length": (
            "7-bit length in byte 1 & 0x7F; 126 means a 16-bit length follows, 127 a 64-bit one"
        ),
        "mask_key": "the 4-byte masking key follows the length fields, only when MASK is set",
        "header_len": "header = 2 bytes + 2 or 8 extended-length bytes + 4 key bytes if masked",
    }
    for name, data, want in cases:
        try:
            got = fn(data)
        except Exception as exc:
            fb.fail(f"{name}: raised {exc!r}")
            continue
        if not isinstance(got, dict):
            return fb.fail(f"return a dict, got {type(got).__name__}")
        for field, value in want.items():
            if got.get(field) != value:
                fb.fail(
                    f"{name}: {field} is {got.get(field)!r}, expected {value!r} ({hints[field]})"
                )
                break
    if fb.passed:
        fb.note("all six headers decode, including both extended lengths")
    return fb


def check_backoff(fn: Callable[[int, random.Random], float], clients: int = 1000) -> Feedback:
    """Exercise 3: ``fn(attempt, rng)`` is the delay before reconnect attempt
    ``attempt`` (0, 1, 2...): exponential, capped at 30 s, with jitter.

    The checker also simulates ``clients`` clients cut off by one server
    restart and reports the worst reconnect stampede (most reconnects in one
    100 ms window) for the learner's schedule."""
    fb = Feedback("Exercise 3: a reconnect schedule that does not stampede")
    rng = random.Random(42)
    try:
        samples = {a: [float(fn(a, rng)) for _ in range(300)] for a in range(12)}
    except Exception as exc:
        return fb.fail(f"calling it raised {exc!r}")
    if any(v < 0 for vs in samples.values() for v in vs):
        return fb.fail("a delay is negative")
    means = [statistics.mean(samples[a]) for a in range(6)]
    if not all(later > earlier * 1.4 for earlier, later in zip(means, means[1:], strict=False)):
        fb.fail(
            "the delay should grow exponentially with the attempt (roughly doubling); "
            f"mean delays for attempts 0-5 were {[round(m, 3) for m in means]}"
        )
    if max(v for vs in samples.values() for v in vs) > 30:
        fb.fail("cap the delay at 30 s: past some point, waiting longer only loses time")
    spread = statistics.pstdev(samples[5]) / max(statistics.mean(samples[5]), 1e-9)
    if spread < 0.1:
        fb.fail(
            "no jitter: every client that lost the same server waits the same time and they "
            "all come back at once. Draw the delay at random, e.g. rng.uniform(0, ceiling)"
        )
    if samples[0] and max(samples[0]) > 2:
        fb.fail("the first retry should come quickly (at most a couple of seconds)")
    peak = stampede(fn, clients)
    fb.note(f"{clients} clients cut off together: at most {peak} reconnect in the same 100 ms")
    if fb.passed and peak > clients // 4:
        fb.fail("the reconnects still bunch up: spread the first retry over a window too")
    return fb


def stampede(fn: Callable[[int, random.Random], float], clients: int = 1000) -> int:
    """The most first reconnects landing in one 100 ms window."""
    rng = random.Random(7)
    windows: dict[int, int] = {}
    for _ in range(clients):
        at = fn(0, rng)
        windows[int(at / 0.1)] = windows.get(int(at / 0.1), 0) + 1
    return max(windows.values())


ALLOWED = "https://lab.example"


class _Welcome(WebSocketHandler):
    """The room behind the door when the checker is given none."""

    def initialize(self, hub) -> None:
        self.hub = hub

    def open(self) -> None:
        self.write_message({"type": "room.welcome"})


def _upgrade(url: str, **kwargs) -> int:
    try:
        websocket.create_connection(url, timeout=5, **kwargs).close()
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    return 101


def check_door(door: type, room: type | None = None) -> Feedback:
    """Exercise 1: ``door`` is a ``WebSocketHandler`` whose ``check_origin``
    lets in pages from exactly ``https://lab.example``; the checker puts it
    in front of ``room`` (the notebook's tiny room) and tries handshakes.

    Not tried: an ``Origin`` equal to ``Host`` (a DNS-rebinding page).
    Tornado 6.6 admits it before ``check_origin`` is called, so no
    ``check_origin`` can refuse it; the hardened room checks in ``prepare``."""
    fb = Feedback("Exercise 1: a door that checks Origin exactly")
    if not (isinstance(door, type) and issubclass(door, WebSocketHandler)):
        return fb.fail("pass the class itself, a subclass of tornado.websocket.WebSocketHandler")
    guarded = type("Guarded", (door, room or _Welcome), {})
    server = runtime.start(
        "ws-door-check",
        lambda hub: Application([(r"/ws", guarded, {"hub": hub})], log_function=quiet_log),
    )
    url = f"{server.ws_url}/ws"
    cases = [
        (ALLOWED, 101, "the allowed page itself must get in"),
        ("https://evil.example", 403, "any other site's page must get 403"),
        ("https://lab.example.evil.net", 403,
         "a prefix test (startswith, or 'in' a string) lets look-alike hosts in: compare exactly"),
        ("https://notlab.example", 403, "a suffix test (endswith) lets look-alike hosts in"),
        ("http://lab.example", 403, "the scheme is part of the origin: http:// is another one"),
        ("null", 403, "a sandboxed or file: page sends Origin: null; refuse it"),
    ]  # fmt: skip
    try:
        for origin, want, hint in cases:
            got = _upgrade(url, origin=origin)
            if got == 500:
                return fb.fail(f"Origin {origin!r}: check_origin raised (the server answered 500)")
            if got != want:
                fb.fail(f"Origin {origin!r}: got {got}, expected {want}: {hint}")
        if _upgrade(url, suppress_origin=True) != 101:
            fb.fail(
                "a client with no Origin (not a browser) should still get in: the token guards it"
            )
    finally:
        server.stop()
    if fb.passed:
        fb.note(f"only {ALLOWED} gets in; look-alikes, another scheme and null get 403")
    return fb
