"""How an SSE block is written, and why each field is checked (WHATWG HTML 9.2.6).

Every field the server writes is one line: ``format_event`` refuses an
``event``, ``id`` or ``retry`` holding CR or LF (either would end the line,
and what follows would be read as a field of the sender's choosing:
``"x\\nid: 999"`` forges an id and poisons the client's Last-Event-ID), and
splits ``data`` on CR, LF and CRLF into several ``data:`` lines, which the
client joins back with ``\\n``. Used by ``servers.sse`` and ``servers.fanout``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection
from typing import Any

from .events import Event

# The spec's line endings: CRLF, a lone LF or a lone CR.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field(name: str, value: str) -> str:
    """One ``name: value`` line; a CR or LF in the value is refused, never
    escaped or stripped, since no right value holds one."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"an SSE {name} cannot contain CR or LF: {value[:40]!r}")
    return f"{name}: {value}"


def format_event(
    data: str,
    event: str | None = None,
    id: str | int | None = None,
    retry: int | None = None,
) -> str:
    """One SSE block: ``id``, ``event``, ``retry``, the ``data`` lines, a blank
    line. ``ValueError`` if a one-line field holds a line break."""
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
    line of ``text`` is its own comment: a bare CR would otherwise end the
    comment and start a real field."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text or "")) + "\n"


def format_notice(notice: dict[str, Any]) -> str:
    """A control message (e.g. ``servers.cursor.resync_notice``) as an SSE
    block whose event name is its ``type``: ``addEventListener("resync")``."""
    return format_event(json.dumps(notice, separators=(",", ":")), event=notice["type"])


def mask(value: Any) -> str:
    """``"4111111111111111"`` -> ``"••••1111"``: enough to recognise, not to use."""
    text = str(value)
    return "••••" + text[-4:] if len(text) > 4 else "••••"


def encode_event(event: Event, pretty: bool = False, sensitive: Collection[str] = ()) -> bytes:
    """The event as one UTF-8 SSE block: ``id`` = seq, ``event`` = type,
    ``data`` = the event as JSON, with the payload fields named in
    ``sensitive`` masked before they go on the wire."""
    data = event.to_dict()
    if sensitive and not data["payload"].keys().isdisjoint(sensitive):
        data["payload"] = {k: mask(v) if k in sensitive else v for k, v in data["payload"].items()}
    indent, separators = (2, None) if pretty else (None, (",", ":"))
    # text/event-stream is always UTF-8: no need to escape non-ASCII...
    text = json.dumps(data, indent=indent, separators=separators, ensure_ascii=False)
    try:
        return format_event(text, event=event.type, id=event.seq).encode()
    except UnicodeEncodeError:
        # ...unless a string holds a lone surrogate ("\ud800"), which has no
        # UTF-8 form: escaped as JSON does by default, it arrives.
        text = json.dumps(data, indent=indent, separators=separators)
        return format_event(text, event=event.type, id=event.seq).encode()


def encode_or_skip(event: Event, pretty: bool = False, sensitive: Collection[str] = ()) -> bytes:
    """``encode_event``, or a comment saying the event was skipped. Events are
    checked where they are made (``check_event_type``), so one that cannot be
    written is a bug elsewhere: it must not end every live stream, nor every
    resume from before it (a comment cannot forge anything)."""
    try:
        return encode_event(event, pretty, sensitive)
    except ValueError as exc:
        logging.getLogger(__name__).warning("event %d skipped on SSE: %s", event.seq, exc)
        return format_comment(f"event {event.seq} skipped: cannot be sent as SSE").encode()


def event_text(event: Event) -> str:
    """The event as one compact block: ``id``, ``event``, one ``data`` line
    of its own JSON (``Event.to_json()``, ASCII): fan-out's wire form."""
    return format_event(event.to_json(), event=event.type, id=event.seq)
