"""Small pieces every transport's handlers share."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from tornado.httputil import responses
from tornado.web import Application, HTTPError, RequestHandler

from .cursor import parse_number


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


def parse_cursor(handler: RequestHandler, name: str = "after", default: int = 0) -> int:
    """A sequence-number cursor (or a count) from the query string; absent:
    ``default``; anything but ASCII digits (blank, ``+5``, ``٣``, ``²``,
    5,000 digits): 400 with the reason (``servers.cursor.parse_number``)."""
    raw = handler.get_query_argument(name, None)
    if raw is None:
        return default
    if raw == "":  # Tornado strips spaces: "after=" and "after=%20" both land here
        raise HTTPError(400, f"{name} is blank: send a whole number, or leave it out")
    try:
        return parse_number(raw, name)
    except ValueError as exc:
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


def app_with(*route_fns: Callable[[Any], list]) -> Callable[[Any], Application]:
    """An app factory serving several transports' routes from one server,
    e.g. ``app_with(polling.routes, streaming.routes)``: one port, one event
    log, so every client sees the very same events."""

    def factory(hub: Any) -> Application:
        return Application([r for fn in route_fns for r in fn(hub)], hub=hub)

    return factory
