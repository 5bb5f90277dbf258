"""``ProviderHandle``: the notebook's blocking remote control for a webhook
provider running in a ``ServerThread`` (``servers.webhooks.provider``).

Every call runs on the server's loop through ``server.call``, so no lock is
needed, and reaches the provider as ``server.state``, so it is the current
one even after the server was stopped and started again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from servers.events import Event
from servers.webhooks.endpoints import Endpoint
from servers.webhooks.outbox import Message
from servers.webhooks.provider import Provider


class ProviderHandle:
    def __init__(self, server: Any) -> None:
        self.server = server

    @property
    def provider(self) -> Provider:
        return self.server.state

    def _call(self, fn: Callable[[Provider], Any], timeout: float = 5.0) -> Any:
        return self.server.call(lambda: fn(self.provider), timeout=timeout)

    def subscribe(
        self, url: str, event_types: Sequence[str], secret: str | None = None, **options: Any
    ) -> tuple[Endpoint, str]:
        """Register ``url`` for ``event_types``: the new ``Endpoint`` and its
        secret (``options``: ``allow_loopback``, see ``Endpoints.add``)."""
        return self._call(lambda p: p.endpoints.add(url, event_types, secret, **options), 10)

    def publish(self, type: str, payload: dict | None = None) -> Event:
        return self.server.publish(type, payload or {})

    def status(self) -> dict:
        return self._call(Provider.status)

    def attempts(self, after: int = 0) -> list[dict]:
        """The attempt log after attempt id ``after`` (the last one you saw)."""
        return self._call(lambda p: p.outbox.attempts(after))

    def messages(self, status: str | None = None) -> list[Message]:
        return self._call(lambda p: p.outbox.messages(status))

    def dead_letters(self) -> list[Message]:
        return self.messages("dead")

    def replay(self, message_ids: list[int] | None = None) -> int:
        return self._call(lambda p: p.replay(message_ids))

    def request_bytes(self, msg_id: str | None = None) -> bytes:
        """The exact bytes of the last request sent for ``msg_id`` (default: the latest)."""

        def get(p: Provider) -> bytes:
            if not p.recent_requests:
                raise LookupError("no delivery has been sent yet")
            if msg_id:
                return p.recent_requests[msg_id]
            return next(reversed(p.recent_requests.values()))

        return self._call(get)

    def rotate_secret(self, endpoint_id: str, new_secret: str | None = None) -> str:
        return self._call(lambda p: p.endpoints.rotate_secret(endpoint_id, new_secret))

    def finish_rotation(self, endpoint_id: str) -> None:
        self._call(lambda p: p.endpoints.finish_rotation(endpoint_id))

    def enable(self, endpoint_id: str) -> None:
        self._call(lambda p: p.endpoints.enable(endpoint_id))

    # -- health (``servers.webhooks.health``) ------------------------------------------------
    def health(self, endpoint_id: str | None = None) -> list[dict]:
        """Per endpoint: status, success rate, consecutive failures, last
        success and failure, deliveries held while disabled."""
        return self._call(lambda p: p.health.report(endpoint_id))

    def alerts(self, after: int = 0) -> list[dict]:
        return self._call(lambda p: p.health.alerts(after))

    def configure_health(self, **changes: Any) -> Any:
        """Change the running provider's thresholds (``HealthConfig`` fields)."""
        return self._call(lambda p: p.health.configure(**changes))

    def reenable(self, endpoint_id: str, replay: bool = True) -> dict:
        """Re-enable a disabled endpoint; send what it missed (``Health.reenable``)."""
        return self._call(lambda p: p.health.reenable(endpoint_id, replay))

    def delete(self, endpoint_id: str) -> bool:
        return self._call(lambda p: p.endpoints.delete(endpoint_id))

    def endpoints(self) -> list[Endpoint]:
        return self._call(lambda p: p.endpoints.all())

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is pending or in flight (True) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status()
            if s["pending"] == 0 and s["in_flight"] == 0:
                return True
            time.sleep(0.02)
        return False
