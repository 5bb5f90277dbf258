"""The provider's registered URLs: checked, stored, rotated, disabled.

Hardening beside the delivery loop (``provider.py``), which only asks
``endpoints.get(id)``, ``endpoints.wanting(type)`` and
``endpoints.loopback_ok(id)``. Registering runs the SSRF checks (``ssrf``)
and stores the URL normalised (percent-encoded path, IDNA host), as it will
be sent; secrets are ``whsec_...`` strings, newest first, two of them while
a rotation is under way (``signing`` signs with both).

Every change is written to the outbox file first (its ``subscriptions``
table; a real provider would encrypt the secrets at rest, this teaching
file does not) and then to the in-memory copy the delivery loop reads, so a
restart reloads the same endpoints. Lives on the provider's loop.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from . import signing
from .outbox import Outbox
from .ssrf import check_url_async

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    event_types TEXT NOT NULL,        -- JSON list; ["*"] means every type
    secrets TEXT NOT NULL,            -- JSON list, newest first (rotation)
    status TEXT NOT NULL DEFAULT 'active',  -- active | disabled (a 410, or failing: health)
    disabled_reason TEXT,
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Endpoint:
    """A registered URL and the event types it wants: what the HTTP API (and
    the industry) calls a webhook *subscription*, hence the ``subscriptions``
    table, the ``sub_`` ids and the outbox's ``sub_id``. Named ``Endpoint`` in
    code so ``Subscription`` means one thing: a hub queue (``servers.hub``)."""

    id: str
    url: str
    event_types: tuple[str, ...]
    secrets: tuple[str, ...]
    status: str = "active"
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        return self.status == "active" and (
            "*" in self.event_types or event_type in self.event_types
        )


class Endpoints:
    def __init__(self, outbox: Outbox, allow_loopback: bool = False) -> None:
        self.outbox = outbox
        self.db = outbox.db  # one file, one connection, one transaction at a time
        self.allow_loopback = allow_loopback
        self.db.executescript(SCHEMA)
        rows = self.db.execute("SELECT * FROM subscriptions ORDER BY created_at").fetchall()
        self._by_id = {r["id"]: _endpoint(r) for r in rows}
        # Endpoints the operator allowed to a loopback URL from Python
        # (``add(..., allow_loopback=True)``): kept in memory only, so after a
        # restart they are refused at delivery until allowed again.
        self._loopback_ok: set[str] = set()

    # -- what the delivery loop reads ------------------------------------------------------
    def get(self, endpoint_id: str) -> Endpoint | None:
        return self._by_id.get(endpoint_id)

    def wanting(self, event_type: str) -> list[Endpoint]:
        return [e for e in self._by_id.values() if e.wants(event_type)]

    def loopback_ok(self, endpoint_id: str) -> bool:
        return self.allow_loopback or endpoint_id in self._loopback_ok

    def all(self) -> list[Endpoint]:
        return list(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    # -- changes: the file first, then the copy in memory ---------------------------------
    async def add(
        self,
        url: str,
        event_types: Sequence[str],
        secret: str | None = None,
        allow_loopback: bool = False,
    ) -> tuple[Endpoint, str]:
        """Register ``url`` for ``event_types``; returns it and its secret.

        ``allow_loopback=True`` lets this one endpoint use a loopback URL even
        when the provider refuses loopback (the operator's own receiver,
        registered in-process; never reachable from the HTTP API).
        Raises ``URLRefusedError`` (SSRF checks) or ``ValueError``.
        """
        if not isinstance(url, str):
            raise ValueError(f"url must be a string, not {type(url).__name__}")
        if secret is not None and not isinstance(secret, str):
            raise ValueError(f"secret must be a 'whsec_...' string, not {type(secret).__name__}")
        if not isinstance(event_types, (list, tuple)) or not event_types:
            raise ValueError("event_types must be a non-empty list, e.g. ['email.bounced']")
        if not all(isinstance(t, str) and t for t in event_types):
            raise ValueError("every event type must be a non-empty string")
        url = (await check_url_async(url, self.allow_loopback or allow_loopback)).url
        secret = secret or signing.generate_secret()
        signing.decode_secret(secret)  # refuse a malformed one now, not at delivery
        endpoint = Endpoint(f"sub_{uuid.uuid4().hex[:12]}", url, tuple(event_types), (secret,))
        self._write(
            "INSERT INTO subscriptions (id, url, event_types, secrets, created_at)"
            " VALUES (?,?,?,?,?)",
            (
                endpoint.id,
                url,
                json.dumps(list(event_types)),
                json.dumps([secret]),
                self.outbox.clock(),
            ),
        )
        self._by_id[endpoint.id] = endpoint
        if allow_loopback:
            self._loopback_ok.add(endpoint.id)
        return endpoint, secret

    def rotate_secret(self, endpoint_id: str, new_secret: str | None = None) -> str:
        """Sign with the new *and* the old secret until ``finish_rotation``."""
        endpoint = self._by_id[endpoint_id]
        new_secret = new_secret or signing.generate_secret()
        signing.decode_secret(new_secret)
        self._set_secrets(endpoint, (new_secret, *endpoint.secrets[:1]))
        return new_secret

    def finish_rotation(self, endpoint_id: str) -> None:
        endpoint = self._by_id[endpoint_id]
        self._set_secrets(endpoint, endpoint.secrets[:1])

    def _set_secrets(self, endpoint: Endpoint, secrets: tuple[str, ...]) -> None:
        sql = "UPDATE subscriptions SET secrets=? WHERE id=?"
        self._write(sql, (json.dumps(list(secrets)), endpoint.id))
        self._by_id[endpoint.id] = replace(endpoint, secrets=secrets)

    def enable(self, endpoint_id: str) -> None:
        sql = "UPDATE subscriptions SET status='active', disabled_reason=NULL WHERE id=?"
        self._write(sql, (endpoint_id,))
        endpoint = self._by_id[endpoint_id]
        self._by_id[endpoint_id] = replace(endpoint, status="active", disabled_reason=None)

    def disable(self, endpoint_id: str, reason: str, keep_pending: bool = False) -> None:
        """Stop delivering to it (a 410 Gone): its pending messages become dead
        letters, unless ``keep_pending`` (``health`` holds them instead).
        Committed with the attempt that saw the 410."""
        endpoint = self._by_id.get(endpoint_id)
        if endpoint is not None:
            self._by_id[endpoint_id] = replace(endpoint, status="disabled", disabled_reason=reason)
        sql = "UPDATE subscriptions SET status='disabled', disabled_reason=? WHERE id=?"
        self._write(sql, (reason, endpoint_id), commit=False)
        if not keep_pending:
            self.outbox.kill_pending(endpoint_id, f"subscription disabled: {reason}")

    def delete(self, endpoint_id: str) -> bool:
        """Unsubscribe. What it had not received yet (pending or held) becomes
        dead letters in the same transaction: listed, replayable, not lost."""
        self._by_id.pop(endpoint_id, None)
        found = self._write("DELETE FROM subscriptions WHERE id=?", (endpoint_id,), commit=False)
        if found:
            self.outbox.kill_pending(endpoint_id, "subscription deleted")
        self.outbox.commit()
        return found > 0

    def _write(self, sql: str, args: tuple, commit: bool = True) -> int:
        self.outbox.begin()
        rowcount = self.db.execute(sql, args).rowcount
        if commit:
            self.outbox.commit()
        return rowcount


def _endpoint(r) -> Endpoint:
    return Endpoint(
        r["id"],
        r["url"],
        tuple(json.loads(r["event_types"])),
        tuple(json.loads(r["secrets"])),
        r["status"],
        r["disabled_reason"],
    )
