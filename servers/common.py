"""Small pieces every transport's handlers share."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tornado.web import Application, HTTPError, RequestHandler


class JSONErrorsMixin:
    """Answer errors as JSON with a reason a learner can read, not HTML."""

    def write_error(self: RequestHandler, status_code: int, **kwargs: Any) -> None:  # type: ignore[misc]
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, HTTPError) and exc.log_message:
            reason = exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason, "status": status_code}))


def parse_cursor(handler: RequestHandler, name: str = "after", default: int = 0) -> int:
    """A sequence-number cursor from the query string; 400 if it is not one."""
    raw = handler.get_query_argument(name, None)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(400, f"{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise HTTPError(400, f"{name}={value} is negative")
    return value


def app_with(*route_fns: Callable[[Any], list]) -> Callable[[Any], Application]:
    """An app factory serving several transports' routes from one server,
    e.g. ``app_with(polling.routes, streaming.routes)``: one port, one event
    log, so every client sees the very same events."""

    def factory(hub: Any) -> Application:
        return Application([r for fn in route_fns for r in fn(hub)], hub=hub)

    return factory
