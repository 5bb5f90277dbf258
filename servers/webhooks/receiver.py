"""The webhook receiver: your app's endpoint that the provider POSTs to.

What a careful receiver does, in this order (``WebhookHandler.post``):

1. Refuse an oversized body (413) before looking at it.
2. Verify the signature over the **raw body bytes** (400 for missing or
   malformed headers, 401 for a bad signature or a timestamp outside the
   5-minute window: a replayed old message).
3. Only then parse the JSON (400 if it is not JSON).
4. Deduplicate on ``webhook-id``: a retry of a message already accepted is
   answered 200 and *not* processed again (at-least-once delivery means
   duplicates will come).
5. Answer 2xx at once and process after answering, so a slow handler never
   makes the provider time out and retry.

It also has failure modes, so the notebook can break it on purpose:
``healthy``, ``500`` (every request fails), ``slow`` (does the work inline
and answers after ``slow_s``, beyond the provider's timeout), ``flaky``
(``flaky_percent`` of requests fail at random), ``429`` (asks to slow down
with ``Retry-After``) and ``410`` (asks the provider to stop). "Down" is
the real thing: the notebook stops the receiver's server.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tornado.web import Application, RequestHandler

from ..events import Event
from ..hub import EventHub
from . import signing

MODES = ("healthy", "500", "slow", "flaky", "429", "410")
MAX_BODY_BYTES = 64 * 1024


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


class Receiver:
    """The receiver's state: secrets, mode, what was seen and processed.

    Lives outside the Tornado app, so it survives the receiver being stopped
    and started again ("down" mode), like a database would. Read from any
    thread; written on the receiver's loop.
    """

    def __init__(
        self,
        secrets: str | Iterable[str],
        recorder: Any = None,
        max_body: int = MAX_BODY_BYTES,
        tolerance_s: float = signing.TOLERANCE_S,
        slow_s: float = 2.0,
        retry_after_s: int = 1,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secrets = [secrets] if isinstance(secrets, str) else list(secrets)
        self.recorder = recorder
        self.max_body = max_body
        self.tolerance_s = tolerance_s
        self.slow_s = slow_s
        self.retry_after_s = retry_after_s
        self.clock = clock
        self.mode = "healthy"
        self.flaky_percent = 50
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()  # webhook-id -> first accepted
        self.processed: Counter[str] = Counter()  # webhook-id -> times processed
        self.refused: Counter[str] = Counter()  # reason kind -> count
        self.requests = 0
        self.duplicates_absorbed = 0
        self.receipts: deque[Receipt] = deque(maxlen=500)
        self.handlers: list[Callable[[dict], Any]] = []
        self._listeners: list[Callable[[Receipt], None]] = []

    # -- configuration ------------------------------------------------------------------
    def set_mode(self, mode: str, flaky_percent: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} ('down': stop the server)")
        if flaky_percent is not None:
            if not 0 <= flaky_percent <= 100:
                raise ValueError("flaky_percent is between 0 and 100")
            self.flaky_percent = flaky_percent
        self.mode = mode

    def add_listener(self, fn: Callable[[Receipt], None]) -> None:
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[Receipt], None]) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def app_factory(self) -> Callable[[EventHub], Application]:
        """For ``runtime.start("receiver", receiver.app_factory())``."""

        def factory(hub: EventHub) -> Application:
            return Application(routes(self), hub=hub, log_function=quiet_log)

        return factory

    # -- counters the checkpoints assert on --------------------------------------------
    @property
    def processed_once(self) -> int:
        with self._lock:
            return len(self.processed)

    @property
    def processed_twice(self) -> int:
        """Messages whose work ran more than once: must stay 0."""
        with self._lock:
            return sum(1 for n in self.processed.values() if n > 1)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "processed": len(self.processed),
                "processed twice": sum(1 for n in self.processed.values() if n > 1),
                "duplicates absorbed": self.duplicates_absorbed,
                "refused": sum(self.refused.values()),
            }

    def last_receipts(self, n: int = 10) -> list[Receipt]:
        with self._lock:
            return list(self.receipts)[-n:]

    # -- loop side ------------------------------------------------------------------------
    def _note(self, receipt: Receipt, refused_kind: str | None = None) -> None:
        with self._lock:
            self.receipts.append(receipt)
            if refused_kind:
                self.refused[refused_kind] += 1
            listeners = list(self._listeners)
        for fn in listeners:
            fn(receipt)

    def _first_time(self, msg_id: str) -> bool:
        with self._lock:
            if msg_id in self._seen:
                self.duplicates_absorbed += 1
                return False
            self._seen[msg_id] = self.clock()
            while len(self._seen) > 100_000:  # bounded; older than any retry window
                self._seen.popitem(last=False)
            return True

    def process(self, msg_id: str, doc: dict) -> None:
        """The application's work for one message (runs once per webhook-id)."""
        with self._lock:
            self.processed[msg_id] += 1
        if self.recorder is not None and "seq" in doc:
            event = Event(
                int(doc["seq"]),
                str(doc.get("type")),
                doc.get("data") or {},
                int(doc.get("sent_ns", 0)),
            )
            self.recorder.record(event)
        for handler in list(self.handlers):
            handler(doc)


WEBHOOK_HEADERS = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
)


class WebhookHandler(RequestHandler):
    """``POST /webhook``: verify, deduplicate, answer fast, then process."""

    def initialize(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def check_xsrf_cookie(self) -> None:  # a webhook is not a browser form
        return

    def refuse(self, status: int, kind: str, reason: str, **info: Any) -> None:
        # Noted before answering, so whoever reads the answer sees the count.
        self.receiver._note(self._receipt(status, f"{kind}: {reason}", **info), refused_kind=kind)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": reason, "status": status}))

    def _receipt(
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

    async def post(self) -> None:
        r = self.receiver
        now_ns = time.monotonic_ns()
        with r._lock:
            r.requests += 1
        body = self.request.body  # the raw bytes, exactly as signed
        if len(body) > r.max_body:
            return self.refuse(413, "too large", f"body of {len(body)} bytes exceeds {r.max_body}")
        try:
            msg_id = signing.verify(r.secrets, self.request.headers, body, r.clock(), r.tolerance_s)
        except signing.VerificationError as exc:
            kind = {400: "bad headers", 401: "not authentic"}[exc.status]
            return self.refuse(exc.status, kind, exc.reason)
        try:
            doc = json.loads(body)  # parsed only now, after the signature held
        except ValueError:
            return self.refuse(400, "not JSON", "the body is not valid JSON")
        if not isinstance(doc, dict):
            return self.refuse(400, "not JSON", "the body must be a JSON object")

        mode = r.mode
        if mode == "500" or (mode == "flaky" and r._rng.uniform(0, 100) < r.flaky_percent):
            return self.refuse(500, f"mode {mode}", "simulated application error", doc=doc)
        if mode == "429":
            self.set_header("Retry-After", str(r.retry_after_s))
            return self.refuse(429, "mode 429", "slow down", doc=doc)
        if mode == "410":
            return self.refuse(410, "mode 410", "this endpoint is gone: stop sending", doc=doc)

        if not r._first_time(msg_id):
            # Already accepted once (a retry after a timeout, or a replay):
            # say yes again, do nothing.
            self.set_header("Content-Type", "application/json")
            self.finish(b'{"status":"duplicate"}')
            r._note(self._receipt(200, "duplicate (absorbed)", doc, now_ns))
            return
        if mode == "slow":
            # The anti-pattern: doing the work before answering. The provider
            # gives up waiting and retries; the dedupe above absorbs the retry.
            r.process(msg_id, doc)
            await asyncio.sleep(r.slow_s)
            if not self.request.connection.stream.closed():
                self.finish(b'{"status":"processed"}')
            r._note(self._receipt(200, "processed (answered late)", doc, now_ns))
            return
        self.set_header("Content-Type", "application/json")
        self.finish(b'{"status":"accepted"}')  # answer first...
        receipt = self._receipt(200, "processed", doc, now_ns)
        # ...then do the work on the next loop turn, after the answer is out.
        asyncio.get_running_loop().call_soon(_process_and_note, r, msg_id, doc, receipt)


def _process_and_note(r: Receiver, msg_id: str, doc: dict, receipt: Receipt) -> None:
    r.process(msg_id, doc)
    r._note(receipt)


def quiet_log(handler: RequestHandler) -> None:
    """No access log: refusals and failures are the demo, not errors to shout
    about (they are in ``Receiver.receipts``), and log lines printed from a
    server thread would land in whichever notebook cell runs next."""


def routes(receiver: Receiver) -> list:
    return [(r"/webhook", WebhookHandler, {"receiver": receiver})]
