"""Checkers for notebook 04's exercises (scaling)."""

from __future__ import annotations

from collections.abc import Callable

from servers.wsframes import encode_text_frame

from . import Feedback

GIB = 2**30


def check_max_connections(fn: Callable, measured_kib: float | None = None) -> Feedback:
    """Exercise 1: ``fn(ram_bytes, kib_per_connection, fd_limit, reserved_fds=64)``."""
    fb = Feedback("Exercise 1: how many connections fit")
    cases = [
        # (args, expected, what a wrong answer usually forgot)
        ((1 * GIB, 16, 1_000_000), 65_536, "memory: 1 GiB / 16 KiB is 65,536 connections"),
        ((8 * GIB, 16, 20_000), 20_000 - 64, "the fd limit: every connection is one descriptor"),
        ((8 * GIB, 16, 1024, 100), 1024 - 100, "the reserved descriptors (use reserved_fds)"),
        ((1 * GIB, 14.5, None), int(GIB // (14.5 * 1024)), "fd_limit=None (Windows): memory only"),
        ((1 * GIB, 16, 50), 0, "a limit below the reserve leaves no room: 0, not negative"),
    ]
    for args, want, hint in cases:
        try:
            got = fn(*args)
        except Exception as exc:  # feedback, not a traceback
            return fb.fail(f"max_connections{args} raised {exc!r}; hint: {hint}")
        if isinstance(got, float) and not got.is_integer():
            return fb.fail(f"max_connections{args} returned {got}: a count of connections is whole")
        if got != want:
            fb.fail(f"max_connections{args} returned {got}, expected {want}: check {hint}")
    if fb.passed:
        fb.note("both ceilings handled: memory and file descriptors, whichever is lower")
        if measured_kib:
            fb.note(
                f"with this machine's measured {measured_kib:.1f} KiB per connection, 1 GiB "
                f"holds about {fn(GIB, measured_kib, None):,} idle connections"
            )
    return fb


def check_encode_frame(fn: Callable[[str], bytes]) -> Feedback:
    """Exercise 2: ``fn(text)`` -> one unmasked WebSocket text frame."""
    fb = Feedback("Exercise 2: encode a frame once")
    try:
        hello = fn("Hello")
    except Exception as exc:
        return fb.fail(f'encode_frame("Hello") raised {exc!r}')
    if not isinstance(hello, (bytes, bytearray)):
        return fb.fail(f"it should return bytes, got {type(hello).__name__}")
    want = bytes.fromhex("810548656c6c6f")
    if bytes(hello) != want:
        if len(hello) > 1 and hello[1] & 0x80:
            return fb.fail("the MASK bit is set: servers must not mask their frames (RFC 6455 5.1)")
        return fb.fail(
            f'encode_frame("Hello") is {bytes(hello).hex(" ")}, the RFC says {want.hex(" ")}'
        )
    for text, hint in [
        ("x" * 125, "125 bytes still fits in the 7-bit length"),
        ("x" * 126, "126 bytes: length byte 126, then a 2-byte big-endian length"),
        ("x" * 65535, "65535 bytes: still the 2-byte form"),
        ("x" * 65536, "65536 bytes: length byte 127, then an 8-byte big-endian length"),
        ("héllo wörld ✓", "the length counts UTF-8 bytes, not characters"),
    ]:
        try:
            got = bytes(fn(text))
        except Exception as exc:
            return fb.fail(f"a {len(text)}-character text raised {exc!r} ({hint})")
        if got != encode_text_frame(text):
            return fb.fail(f"wrong frame for a {len(text.encode())}-byte text: {hint}")
    fb.note("every length form is right: this is the frame the encode-once mode writes to all")
    return fb
