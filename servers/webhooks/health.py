"""Per-endpoint health: success rate, failure streak, alerts, disabling, re-enabling.

Hardening beside the delivery loop (``provider.py``), which calls
``health.record(...)`` after logging each attempt. For every endpoint the
provider keeps the outcomes of its last ``recent`` attempts (the success
rate), the consecutive failures, and when the last success and the last
failure happened. Then:

* **Alert**: when the consecutive failures reach ``alert_after``, one alert
  is recorded (table ``health_alerts``; ``GET /health`` and the notebook show
  it). One per failing streak: a success ends the streak.
* **Disable**: an endpoint that has failed *continuously* for
  ``disable_after_s`` is disabled. Svix does this after 5 days of failures
  and tells the account (an ``endpoint.disabled`` operational webhook,
  docs.svix.com/retries); the notebook compresses the window to seconds.
* **Keep**: while it is disabled for failing, its deliveries are *held*
  (outbox status ``held``): written, not attempted, not lost. Stripe, by
  contrast, does not send events generated while an endpoint is disabled
  (stripe.com/docs/workbench/webhooks); Svix can "recover" failed messages
  since a time. Here the outbox keeps them.
* **Re-enable** (``reenable``, ``POST /subscriptions/<id>/enable``): the held
  deliveries and the endpoint's dead letters become pending again, due now,
  each with its original ``webhook-id``, so an idempotent receiver processes
  each event once.

Everything is written to the provider's SQLite outbox, in the attempt's
transaction: a restart keeps the numbers, the alerts and the disabled state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .provider import Provider

SVIX_DISABLE_AFTER_S = 5 * 24 * 3600.0  # Svix: every attempt failed for 5 days

SCHEMA = """
CREATE TABLE IF NOT EXISTS endpoint_health (
    sub_id TEXT PRIMARY KEY,
    recent TEXT NOT NULL DEFAULT '',      -- last outcomes, oldest first: 1 delivered, 0 failed
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since REAL,                   -- start of the first failed attempt of the streak
    last_success_at REAL,
    last_failure_at REAL,
    alerted INTEGER NOT NULL DEFAULT 0,   -- 1: this streak has raised its alert
    disabled_at REAL                      -- set: disabled for failing, deliveries held
);
CREATE TABLE IF NOT EXISTS health_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sub_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,                   -- failing | disabled | reenabled
    detail TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class HealthConfig:
    recent: int = 20  # attempts the success rate is computed over
    alert_after: int = 5  # consecutive failures that raise an alert (this lab's choice)
    disable_after_s: float = SVIX_DISABLE_AFTER_S  # failing continuously this long: disabled

    def __post_init__(self) -> None:
        if not (isinstance(self.recent, int) and self.recent >= 1):
            raise ValueError("recent must be an integer >= 1")
        if not (isinstance(self.alert_after, int) and self.alert_after >= 1):
            raise ValueError("alert_after must be an integer >= 1")
        if not self.disable_after_s > 0:
            raise ValueError("disable_after_s must be a positive number of seconds")


class UnknownEndpointError(LookupError):
    """No endpoint has this id (the API answers 404)."""


class NotDisabledError(ValueError):
    """Re-enabling an endpoint that is active (the API answers 409)."""


@dataclass
class EndpointHealth:
    sub_id: str
    recent: str = ""
    consecutive_failures: int = 0
    failing_since: float | None = None
    last_success_at: float | None = None
    last_failure_at: float | None = None
    alerted: int = 0
    disabled_at: float | None = None

    @property
    def success_rate(self) -> float | None:
        return self.recent.count("1") / len(self.recent) if self.recent else None


class Health:
    """The provider's health book-keeping (``provider.health``); on the provider's loop."""

    def __init__(self, provider: Provider) -> None:
        self.provider, self.clock = provider, provider.clock
        self.outbox, self.endpoints, self.db = (
            provider.outbox,
            provider.endpoints,
            provider.outbox.db,
        )
        self.config: HealthConfig = provider.config.health
        self.db.executescript(SCHEMA)
        rows = self.db.execute("SELECT * FROM endpoint_health").fetchall()
        self._by_id = {r["sub_id"]: EndpointHealth(**dict(r)) for r in rows}
        self.listeners: list[Callable[[], None]] = []  # called after every change (a view)
        provider.intake.holding, provider.intake.keep = self.holding, self.keep

    def configure(self, **changes: Any) -> HealthConfig:
        """Change the thresholds of the running provider (``HealthConfig`` fields)."""
        unknown = set(changes) - {f.name for f in fields(HealthConfig)}
        if unknown:
            raise ValueError(f"unknown health settings {sorted(unknown)}")
        self.config = replace(self.config, **changes)
        return self.config

    # -- after every attempt ----------------------------------------------------------------
    def record(self, message: Any, outcome: str, started_at: float, attempted: bool) -> None:
        """Count one attempt's outcome; alert, disable, hold as the thresholds say.
        ``attempted`` False: no request was made (endpoint deleted or disabled)."""
        if not attempted:
            return
        h, now = self._get(message.sub_id), self.clock()
        delivered = outcome == "delivered"
        h.recent = (h.recent + ("1" if delivered else "0"))[-self.config.recent :]
        if delivered:
            h.consecutive_failures, h.failing_since, h.alerted = 0, None, 0
            h.last_success_at = now
        else:
            h.consecutive_failures += 1
            h.last_failure_at = now
            h.failing_since = started_at if h.failing_since is None else h.failing_since
            if not h.alerted and h.consecutive_failures >= self.config.alert_after:
                h.alerted = 1
                rate = h.success_rate or 0.0
                detail = (
                    f"{h.consecutive_failures} consecutive failures; "
                    f"success rate {rate:.0%} over the last {len(h.recent)} attempts"
                )
                self._alert(h.sub_id, "failing", detail)
            endpoint = self.endpoints.get(h.sub_id)
            failing_for = now - h.failing_since
            if endpoint is not None and endpoint.status == "active":
                if failing_for >= self.config.disable_after_s:
                    self._disable(h, failing_for)
        if h.disabled_at is not None:
            self._hold_pending(h.sub_id)  # e.g. a retry an attempt in flight just scheduled
        self._save(h)
        self._changed()

    def _disable(self, h: EndpointHealth, failing_for: float) -> None:
        reason = (
            f"failing continuously for {failing_for:.1f} s (limit {self.config.disable_after_s:g}"
            " s); deliveries held until re-enabled"
        )
        self.endpoints.disable(h.sub_id, reason, keep_pending=True)
        h.disabled_at = self.clock()
        self._alert(h.sub_id, "disabled", reason)

    # -- while disabled: deliveries held -------------------------------------------------------
    def holding(self, event_type: str) -> list:
        """Endpoints disabled for failing that want ``event_type`` (``Intake`` keeps
        their deliveries, held)."""
        return [
            e
            for e in self.endpoints.all()
            if e.status == "disabled"
            and self._is_held(e.id)
            and ("*" in e.event_types or event_type in e.event_types)
        ]

    def keep(self, items: list[tuple[str, str, int, bytes]]) -> None:
        """Write ``(sub_id, event_type, seq, body)`` rows as held; committed at once."""
        now = self.clock()
        self.outbox.begin()
        for sub_id, event_type, seq, body in items:
            self.db.execute(
                "INSERT INTO messages (msg_id, sub_id, event_type, seq, body, status,"
                " next_attempt_at, created_at) VALUES (?,?,?,?,?,'held',?,?)",
                (f"msg_{uuid.uuid4().hex}", sub_id, event_type, seq, body, now, now),
            )
        self.outbox.commit()
        self._changed()

    def _hold_pending(self, sub_id: str) -> None:
        self.outbox.begin()
        self.db.execute(
            "UPDATE messages SET status='held' WHERE sub_id=? AND status='pending'", (sub_id,)
        )

    def _is_held(self, sub_id: str) -> bool:
        h = self._by_id.get(sub_id)
        return h is not None and h.disabled_at is not None

    # -- re-enable and replay ----------------------------------------------------------------
    def reenable(self, sub_id: str, replay: bool = True) -> dict[str, Any]:
        """Activate ``sub_id`` again; its held deliveries (and, with ``replay``,
        its dead letters) become pending, due now, attempt count reset."""
        endpoint = self.endpoints.get(sub_id) if isinstance(sub_id, str) else None
        if endpoint is None:
            raise UnknownEndpointError(f"no subscription {sub_id!r}")
        if endpoint.status == "active":
            raise NotDisabledError(f"subscription {sub_id} is already active: nothing to re-enable")
        self.endpoints.enable(sub_id)
        now, h = self.clock(), self._get(sub_id)
        self.outbox.begin()
        released = self.db.execute(
            "UPDATE messages SET status='pending', attempts=0, next_attempt_at=?"
            " WHERE sub_id=? AND status='held'",
            (now, sub_id),
        ).rowcount
        h.consecutive_failures, h.failing_since, h.alerted, h.disabled_at = 0, None, 0, None
        dead = [r[0] for r in self.db.execute(self._DEAD, (sub_id,))] if replay else []
        self._alert(sub_id, "reenabled", f"{released} held deliveries released")
        self._save(h)
        self.outbox.commit()
        replayed = self.provider.replay(dead)  # commits, and wakes the dispatcher
        self._changed()
        return {"reenabled": sub_id, "released": released, "replayed": replayed}

    _DEAD = "SELECT id FROM messages WHERE sub_id=? AND status='dead' ORDER BY id"

    # -- what the API and the notebook show ---------------------------------------------------
    def report(self, sub_id: str | None = None) -> list[dict[str, Any]]:
        """One row per endpoint: status, success rate, streak, last success/failure, held."""
        endpoints = self.endpoints.all() if sub_id is None else [self.endpoints.get(sub_id)]
        if None in endpoints:
            raise UnknownEndpointError(f"no subscription {sub_id!r}")
        held = dict(
            self.db.execute(
                "SELECT sub_id, COUNT(*) FROM messages WHERE status='held' GROUP BY sub_id"
            ).fetchall()
        )
        now, rows = self.clock(), []
        for e in endpoints:
            h = self._by_id.get(e.id) or EndpointHealth(e.id)
            doc = {k: v for k, v in asdict(h).items() if k not in ("recent", "alerted")}
            rows.append(
                {
                    **doc,
                    "url": e.url,
                    "status": e.status,
                    "disabled_reason": e.disabled_reason,
                    "attempts_counted": len(h.recent),
                    "success_rate": h.success_rate,
                    "failing_for_s": None if h.failing_since is None else now - h.failing_since,
                    "alerted": bool(h.alerted),
                    "held": held.get(e.id, 0),
                }
            )
        return rows

    def alerts(self, after: int = 0) -> list[dict[str, Any]]:
        """Alerts recorded after row ``after`` (a resume cursor)."""
        rows = self.db.execute("SELECT * FROM health_alerts WHERE id>? ORDER BY id", (after,))
        return [dict(r) for r in rows.fetchall()]

    # -- the file ------------------------------------------------------------------------------
    def _get(self, sub_id: str) -> EndpointHealth:
        return self._by_id.setdefault(sub_id, EndpointHealth(sub_id))

    def _save(self, h: EndpointHealth) -> None:
        doc = asdict(h)
        self.outbox.begin()  # joins the attempt's transaction: committed with it
        self.db.execute(
            f"INSERT OR REPLACE INTO endpoint_health ({', '.join(doc)})"
            f" VALUES ({', '.join('?' * len(doc))})",
            tuple(doc.values()),
        )

    def _alert(self, sub_id: str, kind: str, detail: str) -> None:
        self.outbox.begin()
        self.db.execute(
            "INSERT INTO health_alerts (sub_id, at, kind, detail) VALUES (?,?,?,?)",
            (sub_id, self.clock(), kind, detail),
        )

    def _changed(self) -> None:
        for listener in list(self.listeners):
            listener()


__all__ = [
    "Health",
    "HealthConfig",
    "NotDisabledError",
    "SVIX_DISABLE_AFTER_S",
    "UnknownEndpointError",
]
