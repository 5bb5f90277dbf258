"""Checkers for notebook 04's exercises (scaling)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def check_fanout_handler(handler: type) -> Feedback:
    """Exercise 2: a tiny fan-out handler whose ``broadcast`` builds the frame once.

    Runs ``handler`` (``lab.lessons.fanout_tiny.app_for``) with three clients:
    every client must receive each event, no client may be framed on its own
    (``write_message`` per client is the naive way), and a client that leaves
    must leave the set."""
    from lab.lessons import fanout_tiny
    from servers import runtime

    fb = Feedback("Exercise 2: encode the frame once, in the handler")
    framed_per_client = []

    class Watched(handler):  # counts the per-client framing the exercise removes
        def write_message(self, *args: Any, **kwargs: Any) -> Any:
            framed_per_client.append(1)
            return super().write_message(*args, **kwargs)

    server = runtime.start("exercise-fanout", fanout_tiny.app_for(Watched))
    clients: list = []
    try:
        clients = fanout_tiny.join(server, 3)
        first = server.publish("news", {"text": "x" * 200})  # 200+ bytes: the 2-byte length form
        if not all(c.recorder.wait_for(first.seq, timeout=3) for c in clients):
            got = sum(c.recorder.highest_seq >= first.seq for c in clients)
            return fb.fail(
                f"{got} of 3 clients received the event {server.state.errors}: is the frame "
                "valid (encode_text_frame(event.to_json())) and written to every client?"
            )
        if framed_per_client:
            return fb.fail(
                f"write_message ran {len(framed_per_client)} times for one event: each call "
                "frames the text again. Build the frame once with encode_text_frame and write "
                "the same bytes to each client.ws_connection.stream"
            )
        if not fanout_tiny.leave(server, clients, 1):
            return fb.fail("a client left but is still in the set: keep on_close's discard")
        second = server.publish("news", {"text": "after one left"})
        if not all(c.recorder.wait_for(second.seq, timeout=3) for c in clients[1:]):
            return fb.fail(
                f"after one client left the others missed an event {server.state.errors}"
            )
    finally:
        fanout_tiny.stop(clients)
        server.stop()
    fb.note("every client got every event, from one frame built once per event")
    return fb
