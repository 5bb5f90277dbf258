"""The provider's health API, beside ``provider_api`` (same token, same JSON errors).

``GET /health`` lists every endpoint's health (success rate over recent
attempts, consecutive failures, last success and failure, status, held
deliveries) and the alerts (``?after=<alert id>``: only newer ones);
``GET /subscriptions/<id>/health`` one endpoint;
``POST /subscriptions/<id>/enable`` (``{"replay": true}`` by default)
re-enables a disabled endpoint and replays what it missed: 404 for an
unknown id, 409 when it is already active. The logic is in ``health``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tornado.web import HTTPError

from ..cursor import CursorError, parse_number
from .health import NotDisabledError, UnknownEndpointError
from .provider_api import _Base

if TYPE_CHECKING:
    from .provider import Provider


class HealthHandler(_Base):
    def get(self) -> None:
        try:
            after = parse_number(self.get_query_argument("after", "0"), "after")
        except CursorError as exc:
            raise HTTPError(400, str(exc)) from None
        health = self.provider.health
        self.send({"endpoints": health.report(), "alerts": health.alerts(after)})


class EndpointHealthHandler(_Base):
    def get(self, sub_id: str) -> None:
        try:
            self.send(self.provider.health.report(sub_id)[0])
        except UnknownEndpointError as exc:
            raise HTTPError(404, str(exc)) from None


class EnableHandler(_Base):
    """Re-enable a disabled endpoint; its held deliveries (and dead letters,
    unless ``{"replay": false}``) are sent again, each with its own webhook-id."""

    def post(self, sub_id: str) -> None:
        replay = self.body_json().get("replay", True)
        if not isinstance(replay, bool):
            raise HTTPError(400, "'replay' must be true or false")
        try:
            self.send(self.provider.health.reenable(sub_id, replay))
        except UnknownEndpointError as exc:
            raise HTTPError(404, str(exc)) from None
        except NotDisabledError as exc:
            raise HTTPError(409, str(exc)) from None


def health_routes(provider: Provider) -> list:
    p = {"provider": provider}
    return [
        (r"/health", HealthHandler, p),
        (r"/subscriptions/([A-Za-z0-9_]+)/health", EndpointHealthHandler, p),
        (r"/subscriptions/([A-Za-z0-9_]+)/enable", EnableHandler, p),
    ]
