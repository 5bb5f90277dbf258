"""One rule for the numbers clients send back: the resume cursor.

Every transport lets a client say "I have everything up to N, send me what
came after": long polling and NDJSON with ``?after=N``, SSE with the
``Last-Event-ID`` header (or ``?lastEventId=`` where a browser cannot set
it), the WebSocket room with ``?after=N`` or ``{"type": "resume", "after": N}``,
fan-out with ``?after=N``. This module is the one place that reads such a
number and the one place that answers it.

Why so strict: ``str.isdigit()`` accepts ``²`` (which ``int()`` then refuses
with a traceback), ``int()`` reads Arabic-Indic ``٣`` as 3 and ``+5`` as 5,
and a 5,000-digit string trips Python's int-from-string limit. A cursor is a
number this server handed out, so anything but 1 to 18 ASCII digits is a
client bug, answered with a reason (HTTP 400, or ``room.error``), never a 500.
"""

from __future__ import annotations

import re
from typing import Any

from .events import Event, EventLog

# 18 digits fit in a signed 64-bit integer; no log here gets near that.
MAX_DIGITS = 18
_ASCII_DIGITS = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")


class CursorError(ValueError):
    """A cursor the server did not hand out; the message says why."""


def parse_number(raw: Any, name: str = "after") -> int:
    """A whole number >= 0 written as ASCII digits (a string), or an int from JSON.

    Refused with ``CursorError``: blank, signs, spaces, decimals, Unicode
    digits, more than ``MAX_DIGITS`` digits; from JSON also ``true``/``false``,
    floats (``0.9`` is not silently 0), ``Infinity``, strings, null.
    """
    if isinstance(raw, bool) or raw is None:
        raise CursorError(f"{name} must be a whole number >= 0, not {raw!r}")
    if isinstance(raw, int):
        if raw < 0:
            raise CursorError(f"{name}={raw} is negative")
        if raw >= 10**MAX_DIGITS:
            raise CursorError(f"{name} has more than {MAX_DIGITS} digits")
        return raw
    if not isinstance(raw, str):
        raise CursorError(f"{name} must be a whole number >= 0, not {type(raw).__name__}")
    if _ASCII_DIGITS.fullmatch(raw) is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        if raw.isascii() and raw.isdigit():
            reason = f"more than {MAX_DIGITS} digits"
        else:
            reason = "not a sequence number this server sent (ASCII digits 0-9 only)"
        raise CursorError(f"{name}={shown!r}: {reason}")
    return int(raw)


# The one name, on every transport, for "some events you asked for are gone".
RESYNC = "resync"


def resync_notice(
    after: int, last_seq: int, reason: str, missed: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The one shape every transport uses to tell a client it cannot get everything.

    ``after``: the client's cursor; ``missed``: the inclusive range of events
    it will never get from this server (None when it was cut off for being
    too slow and can still catch up from ``after``); ``last_seq``: where the
    server is now. A client that gets one with ``missed`` should reload its
    state (e.g. fetch a snapshot) and go on from the replay that follows.
    """
    return {
        "type": RESYNC,
        "after": after,
        "missed": list(missed) if missed else None,
        "last_seq": last_seq,
        "reason": reason,
    }


def resolve(log: EventLog, after: int) -> tuple[list[Event], dict[str, Any] | None]:
    """What a client that has everything up to ``after`` gets next.

    Returns ``(replay, notice)``: the events after ``after`` still in the
    log, and, when some it missed have already fallen out of the log, the
    resync notice to send before them (else None). A cursor beyond the last
    event (one this server never handed out) raises ``CursorError``.
    """
    try:
        replay, truncated = log.since(after)
    except ValueError as exc:  # in the future
        raise CursorError(str(exc)) from None
    if not truncated:
        return replay, None
    oldest = replay[0].seq if replay else log.last_seq + 1
    gone = (after + 1, oldest - 1)
    reason = f"the log no longer holds events {gone[0]}..{gone[1]}"
    return replay, resync_notice(after, log.last_seq, reason, missed=gone)
