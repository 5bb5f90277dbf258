"""What the receiver saw: receipts, counters and listeners (the notebook's view).

Instrumentation beside the receiver's core (``receiver.py``): every request
ends as a ``Receipt`` (status, verdict, latency, the webhook headers) in a
bounded log that notebook panels follow through listeners, and in the
counters the checkpoints assert on (``processed_once``, ``processed_twice``,
``duplicates_absorbed``, ``refused``...). ``ReceiptLog`` is mixed into
``Receiver``; ``ReceiptHandler`` is its request handler's base.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tornado.web import RequestHandler

from ..events import Event
from .bodylimit import BodyLimitMixin

WEBHOOK_HEADERS = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
)


@dataclass(frozen=True)
class Receipt:
    """One request as the receiver saw it (the notebook's receipt log)."""

    at_ns: int
    status: int
    verdict: str  # "processed", "duplicate", or why it was refused
    msg_id: str | None
    event_type: str | None
    seq: int | None
    latency_ms: float | None
    headers: dict[str, str] = field(default_factory=dict)


class ReceiptLog:
    """``Receiver``'s receipts and counters. Needs ``self._lock``, ``self.inbox``,
    ``self.recorder`` and ``self._processed_once`` from the receiver."""

    def _init_receipts(self) -> None:
        self.refused: Counter[str] = Counter()  # reason kind -> count
        self.requests = 0
        self.duplicates_absorbed = 0
        self.processing_failures = 0
        self.receipts: deque[Receipt] = deque(maxlen=500)
        self._listeners: list[Callable[[Receipt], None]] = []
        self._acked: dict[str, Receipt] = {}  # receipt of each stored message, until processed

    def add_listener(self, fn: Callable[[Receipt], None]) -> None:
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[Receipt], None]) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    # -- counters the checkpoints assert on --------------------------------------------
    @property
    def processed(self) -> Counter[str]:
        """webhook-id -> times its work was committed."""
        with self._lock:
            return self.inbox.processed_counts()

    # Read under the lock, like servers/events.py's EventLog properties (same
    # shape, other counters).
    @property
    def processed_once(self) -> int:
        """Messages whose work was committed (once or more)."""
        with self._lock:
            return self._processed_once

    @property
    def processed_twice(self) -> int:
        """Messages whose work was committed more than once: must stay 0."""
        with self._lock:
            return self.inbox.processed_more_than_once()

    @property
    def pending(self) -> int:
        """Acknowledged, not yet processed."""
        with self._lock:
            return self.inbox.counts()["pending"]

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "processed": self._processed_once,
                "processed twice": self.inbox.processed_more_than_once(),
                "pending": self.inbox.counts()["pending"],
                "duplicates absorbed": self.duplicates_absorbed,
                "refused": sum(self.refused.values()),
            }

    def last_receipts(self, n: int = 10) -> list[Receipt]:
        with self._lock:
            return list(self.receipts)[-n:]

    # -- writing them ----------------------------------------------------------------------
    def _note(self, receipt: Receipt, refused_kind: str | None = None) -> None:
        with self._lock:
            self.receipts.append(receipt)
            if refused_kind:
                self.refused[refused_kind] += 1
            listeners = list(self._listeners)
        for fn in listeners:
            fn(receipt)

    def _after_processing(self, msg_id: str, doc: dict, error: str | None) -> None:
        # Display only, after the commit: the arrival panel and the receipt log.
        with self._lock:
            receipt = self._acked.get(msg_id) if error else self._acked.pop(msg_id, None)
        receipt = receipt or Receipt(
            time.monotonic_ns(), 200, "", msg_id, doc.get("type"), doc.get("seq"), None
        )
        if error is not None:
            verdict = f"processing failed, will retry: {error}"
            self._note(Receipt(**{**receipt.__dict__, "verdict": verdict}))
            return
        # The receipt first, then the arrival: whoever waits on the recorder
        # (a panel, a test) then finds the receipt already in the log.
        self._note(Receipt(**{**receipt.__dict__, "verdict": receipt.verdict or "processed"}))
        if self.recorder is not None and isinstance(doc.get("seq"), int):
            sent_ns = doc.get("sent_ns") if isinstance(doc.get("sent_ns"), int) else 0
            self.recorder.record(
                Event(doc["seq"], str(doc.get("type")), doc.get("data") or {}, sent_ns)
            )


class ReceiptHandler(BodyLimitMixin, RequestHandler):
    """The receiver handler's bookkeeping: every POST counted, every answer
    that is not a plain 2xx noted as a receipt (and counted) before it is
    sent, the latency measured from ``started_ns``; the body limit
    (``bodylimit``) set to the receiver's, its 413 noted like the rest."""

    def initialize(self, receiver: Any) -> None:
        self.receiver = receiver
        self.started_ns = time.monotonic_ns()

    def check_xsrf_cookie(self) -> None:  # a webhook is not a browser form
        return

    def body_limit(self) -> int:  # for ``bodylimit.BodyLimitMixin``
        return self.receiver.max_body

    def answer_too_large(self, reason: str) -> None:
        self.refuse(413, "too large", reason)

    def prepare(self) -> None:
        if self.request.method == "POST":
            with self.receiver._lock:
                self.receiver.requests += 1
        super().prepare()

    def refuse(self, status: int, kind: str, reason: str, **info: Any) -> None:
        # Noted before answering, so whoever reads the answer sees the count.
        self.receiver._note(self.receipt(status, f"{kind}: {reason}", **info), refused_kind=kind)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason, "status": status}))

    def receipt(
        self, status: int, verdict: str, doc: dict | None = None, now_ns: int | None = None
    ) -> Receipt:
        now_ns = now_ns or time.monotonic_ns()
        doc = doc or {}
        latency = (now_ns - doc["sent_ns"]) / 1e6 if isinstance(doc.get("sent_ns"), int) else None
        headers = {h: self.request.headers[h] for h in WEBHOOK_HEADERS if h in self.request.headers}
        return Receipt(
            now_ns,
            status,
            verdict,
            self.request.headers.get("webhook-id"),
            doc.get("type"),
            doc.get("seq"),
            latency,
            headers,
        )
