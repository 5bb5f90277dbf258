"""Small pieces every transport's handlers share."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tornado.httputil import responses
from tornado.web import Application, HTTPError, RequestHandler

from .cursor import CursorError, parse_number, resolve
from .events import Event, EventLog


class JSONErrorsMixin:
    """Answer errors as JSON with a reason a learner can read, not HTML."""

    def write_error(self: RequestHandler, status_code: int, **kwargs: Any) -> None:  # type: ignore[misc]
        # What send_error() gave set_status(), read without RequestHandler's
        # private _reason: the HTTPError's reason, else the one passed, else
        # the standard phrase for the status.
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = kwargs.get("reason") or responses.get(status_code, "Unknown")
        if isinstance(exc, HTTPError) and exc.reason:
            reason = exc.reason
        if isinstance(exc, HTTPError) and exc.log_message:
            reason = exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason, "status": status_code}))


def request_cursor(
    handler: RequestHandler, query: str = "after", header: str | None = None
) -> int | None:
    """The client's cursor, read by ``servers.cursor.parse_number``: the
    ``header`` if given and sent (SSE's ``Last-Event-ID``; blank is the
    spec's "no id yet": None), else ``?<query>=``; None if neither.
    Anything but ASCII digits (blank, `` 5``, ``+5``, ``٣``, ``²``, 5,000
    digits) is a 400 with the reason."""
    raw = handler.request.headers.get(header) if header else None
    name = header
    if raw is not None:
        raw = raw.strip()  # header values: surrounding spaces are not part of them
        if raw == "":
            return None
    else:
        # strip=False: " 5" (a "+5" sent unencoded) is not a number we handed out.
        raw, name = handler.get_query_argument(query, None, strip=False), query
        if raw is None:
            return None
    try:
        return parse_number(raw, name)
    except CursorError as exc:
        raise HTTPError(400, str(exc)) from None


def parse_cursor(handler: RequestHandler, name: str = "after", default: int = 0) -> int:
    """A cursor (or a count, e.g. ``limit``) from the query string, ``default``
    if absent; see ``request_cursor``."""
    value = request_cursor(handler, name)
    return default if value is None else value


def resolve_cursor(log: EventLog, after: int) -> tuple[list[Event], dict[str, Any] | None]:
    """``servers.cursor.resolve``, with a cursor from the future as a 400."""
    try:
        return resolve(log, after)
    except CursorError as exc:
        raise HTTPError(400, str(exc)) from None


# Seconds as a client may write them: "20", "0.5". Not float()'s full
# grammar: it takes "nan", "inf", "1e400", "1_0" and Unicode digits, and
# reads a 400-digit number as infinity.
_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")


def parse_seconds(
    handler: RequestHandler, name: str, default: float, low: float, high: float
) -> float:
    """A duration in seconds from the query string, between ``low`` and
    ``high``; absent: ``default``; anything else: 400 with the reason."""
    raw = handler.get_query_argument(name, None)
    if raw is None:
        return default
    if _SECONDS.fullmatch(raw) is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise HTTPError(
            400, f"{name}={shown!r} is not a number of seconds (ASCII digits, e.g. 20 or 0.5)"
        )
    value = float(raw)
    if not low <= value <= high:
        raise HTTPError(400, f"{name} must be between {low:g} and {high:g} seconds")
    return value


def app_with(*route_fns: Callable[[Any], list], state: Any = None) -> Callable[[Any], Application]:
    """An app factory serving several transports' routes from one server,
    e.g. ``app_with(polling.routes, streaming.routes)``: one port, one event
    log, so every client sees the very same events. ``state``: what
    ``server.state`` returns (e.g. the ``sse.SSEFeed`` its routes share)."""

    def factory(hub: Any) -> Application:
        return Application([r for fn in route_fns for r in fn(hub)], hub=hub, state=state)

    return factory
