"""The webhook receiver: your app's endpoint that the provider POSTs to.

What a careful receiver does, in this order (``WebhookHandler``):

1. Refuse an oversized body (413) while reading it, keeping at most
   ``max_body`` bytes (``bodylimit``).
2. Verify the signature over the **raw body bytes** (400 for missing or
   malformed headers, 401 for a bad signature or a timestamp outside the
   5-minute window: a replayed old message).
3. Only then parse the JSON (400 if it is not JSON).
4. **Store, then acknowledge**: insert the message into the SQLite inbox
   (``inbox``) and commit, and only then answer 2xx. A ``webhook-id``
   already in the inbox is a retry or a replay: answered 200, not stored or
   processed again (at-least-once delivery means duplicates will come).
5. **Process after answering**: a worker on the receiver's loop takes
   pending messages and commits the work together with the mark
   "processed". If the work raises, the message stays pending and is tried
   again; if the process dies, the next start finds it in the file.

At-least-once delivery + idempotent processing = effectively once. It needs
the inbox row committed *before* the 2xx, and the work committed together
with the dedup mark.

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
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.web import Application, RequestHandler, stream_request_body

from ..events import Event
from ..hub import EventHub
from . import signing
from .bodylimit import BodyLimitMixin
from .inbox import Inbox

MODES = ("healthy", "500", "slow", "flaky", "429", "410")
MAX_BODY_BYTES = 64 * 1024
KEEP_IDS_S = 3 * 24 * 3600  # Stripe retries for up to three days
MAX_IDS = 1_000_000
RETRY_S = (0.05, 0.2, 1.0, 5.0)  # waits before processing a failed message again


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
    """The receiver's state: secrets, mode, its inbox, what was processed.

    Lives outside the Tornado app, so it survives the receiver being stopped
    and started again ("down" mode), like a database would. The inbox is a
    SQLite file when ``inbox_path`` is given: then even a new ``Receiver``
    (a new process, after a crash) finds the messages acknowledged but not
    yet processed, and processes them. Without a path it lives in memory.
    Read from any thread; written on the receiver's loop.
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
        inbox_path: str | Path | None = None,
        keep_ids_s: float = KEEP_IDS_S,
        max_ids: int = MAX_IDS,
    ) -> None:
        if keep_ids_s < tolerance_s:
            raise ValueError(
                f"keep_ids_s ({keep_ids_s:g}) must be at least the timestamp tolerance "
                f"({tolerance_s:g} s): inside it only the id stops a replay"
            )
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
        # Re-entrant: a handler run during processing may read the counters.
        self._lock = threading.RLock()
        self.inbox = Inbox(inbox_path or ":memory:", keep_ids_s, max_ids, clock)
        # Kept in step with the file (read once, +1 per commit) so the
        # counters notebooks poll do not scan the table every time.
        self._processed_once = self.inbox.processed_distinct()
        self.refused: Counter[str] = Counter()  # reason kind -> count
        self.requests = 0
        self.duplicates_absorbed = 0
        self.processing_failures = 0
        self.receipts: deque[Receipt] = deque(maxlen=500)
        self.handlers: list[Callable[[dict], Any]] = []
        self._listeners: list[Callable[[Receipt], None]] = []
        self._acked: dict[str, Receipt] = {}  # receipt of each stored message, until processed
        self.processing_paused = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    # -- configuration ------------------------------------------------------------------
    def set_mode(self, mode: str, flaky_percent: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} ('down': stop the server)")
        if flaky_percent is not None:
            if not 0 <= flaky_percent <= 100:
                raise ValueError("flaky_percent is between 0 and 100")
            self.flaky_percent = flaky_percent
        self.mode = mode

    def pause_processing(self) -> None:
        """Store and acknowledge, but process nothing: the state of a receiver
        that died right after answering. Stop its server to make it a crash."""
        self.processing_paused = True

    def resume_processing(self) -> None:
        self.processing_paused = False
        self.wake_worker()

    def add_listener(self, fn: Callable[[Receipt], None]) -> None:
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[Receipt], None]) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def app_factory(self) -> Callable[[EventHub], Application]:
        """For ``runtime.start("receiver", receiver.app_factory())``. Every
        start also starts the inbox worker, which first processes whatever
        an earlier run acknowledged and left pending."""

        def factory(hub: EventHub) -> Application:
            self._start_worker()
            return Application(routes(self), hub=hub, log_function=quiet_log)

        return factory

    def close(self) -> None:
        """Close the inbox file (stop the receiver's server first)."""
        with self._lock:
            self.inbox.close()

    # -- counters the checkpoints assert on --------------------------------------------
    @property
    def processed(self) -> Counter[str]:
        """webhook-id -> times its work was committed."""
        with self._lock:
            return self.inbox.processed_counts()

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

    # -- loop side: store ----------------------------------------------------------------
    def _note(self, receipt: Receipt, refused_kind: str | None = None) -> None:
        with self._lock:
            self.receipts.append(receipt)
            if refused_kind:
                self.refused[refused_kind] += 1
            listeners = list(self._listeners)
        for fn in listeners:
            fn(receipt)

    def store(self, msg_id: str, body: bytes, receipt: Receipt | None = None) -> str:
        """Commit the message to the inbox: ``"new"``, ``"duplicate"`` or ``"full"``."""
        with self._lock:
            outcome = self.inbox.add(msg_id, body)
            if outcome == "duplicate":
                self.duplicates_absorbed += 1
            elif outcome == "new" and receipt is not None:
                self._acked[msg_id] = receipt
            return outcome

    # -- loop side: process ---------------------------------------------------------------
    def process(self, msg_id: str, doc: dict) -> None:
        """The application's work for one message. It runs inside the
        transaction that marks the message processed: its database writes
        commit together with that mark, or not at all."""
        seq = doc.get("seq") if isinstance(doc.get("seq"), int) else None
        event_type = doc.get("type") if isinstance(doc.get("type"), str) else None
        self.inbox.record_effect(msg_id, event_type, seq)
        for handler in list(self.handlers):
            handler(doc)  # outside the database: must be idempotent itself

    def process_one(self, msg_id: str, body: bytes, attempts: int = 0) -> bool:
        """Process one stored message in one transaction. False if it raised
        (rolled back; it stays pending and is tried again later)."""
        doc = json.loads(body)
        with self._lock:
            if self.inbox.status_of(msg_id) != "pending":
                return True  # done meanwhile (the slow mode's inline work)
            self.inbox.begin()
            try:
                self.process(msg_id, doc)
            except BaseException as exc:
                if not isinstance(exc, Exception):  # interrupted: undo, and let it go on
                    self.inbox.db.execute("ROLLBACK")
                    raise  # the app's bug or outage: retry, never absorb
                delay = RETRY_S[min(attempts, len(RETRY_S) - 1)]
                error = f"{type(exc).__name__}: {exc}"
                self.inbox.rollback_and_retry_later(msg_id, error, delay)
                self.processing_failures += 1
                failed = True
            else:
                self.inbox.mark_processed_and_commit(msg_id)
                self._processed_once += 1  # status was pending: a first processing
                failed = False
            receipt = self._acked.pop(msg_id, None) if not failed else self._acked.get(msg_id)
        self._after_processing(msg_id, doc, receipt, error if failed else None)
        return not failed

    def _after_processing(
        self, msg_id: str, doc: dict, receipt: Receipt | None, error: str | None
    ) -> None:
        # Display only, after the commit: the arrival panel and the receipt log.
        receipt = receipt or Receipt(
            time.monotonic_ns(), 200, "", msg_id, doc.get("type"), doc.get("seq"), None
        )
        if error is not None:
            verdict = f"processing failed, will retry: {error}"
            self._note(Receipt(**{**receipt.__dict__, "verdict": verdict}))
            return
        if self.recorder is not None and isinstance(doc.get("seq"), int):
            sent_ns = doc.get("sent_ns") if isinstance(doc.get("sent_ns"), int) else 0
            self.recorder.record(
                Event(doc["seq"], str(doc.get("type")), doc.get("data") or {}, sent_ns)
            )
        self._note(Receipt(**{**receipt.__dict__, "verdict": receipt.verdict or "processed"}))

    def process_due(self, limit: int = 100) -> tuple[int, float | None]:
        """Process up to ``limit`` due messages; return how many were taken
        and when the next failed one is due again (None: nothing waiting)."""
        with self._lock:
            due = [] if self.processing_paused else self.inbox.due(limit)
        for message in due:
            self.process_one(message.msg_id, message.body, message.attempts)
        with self._lock:
            next_at = self.inbox.next_try_at()
        return len(due), next_at

    def wake_worker(self) -> None:
        """Any thread: tell the worker there is something to process."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        if _running_loop() is loop:
            wake.set()  # the handler's case: no cross-thread wake-up needed
        else:
            loop.call_soon_threadsafe(wake.set)

    def _start_worker(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._loop.create_task(self._work(self._wake))

    async def _work(self, wake: asyncio.Event) -> None:
        # Cancelled when the server stops; each message is processed without
        # an await inside its transaction, so a stop never cuts one in half.
        while True:
            wake.clear()
            taken, next_at = self.process_due()
            if taken:
                await asyncio.sleep(0)  # let requests in between batches
                continue
            timeout = None
            if next_at is not None and not self.processing_paused:
                timeout = max(0.0, next_at - self.clock())
            try:
                await asyncio.wait_for(wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


WEBHOOK_HEADERS = (
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-type",
    "content-length",
)


@stream_request_body
class WebhookHandler(BodyLimitMixin, RequestHandler):
    """``POST /webhook``: verify, store, acknowledge, then process."""

    def initialize(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.started_ns = time.monotonic_ns()

    def check_xsrf_cookie(self) -> None:  # a webhook is not a browser form
        return

    def body_limit(self) -> int:
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
        if self.body_too_large:
            return self.refuse(413, "too large", self.too_large_reason())
        body = self.body  # the raw bytes, exactly as signed
        try:
            msg_id = signing.verify(r.secrets, self.request.headers, body, r.clock(), r.tolerance_s)
        except signing.VerificationError as exc:
            kind = {400: "bad headers", 401: "not authentic"}[exc.status]
            return self.refuse(exc.status, kind, exc.reason)
        try:
            doc = json.loads(body)  # parsed only now, after the signature held
        except (ValueError, RecursionError):
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

        # Store before answering: once the 2xx is out, the provider forgets it.
        outcome = r.store(msg_id, body, self._receipt(200, "", doc, self.started_ns))
        if outcome == "full":
            wait = r.inbox.retry_after_s()
            self.set_header("Retry-After", str(int(wait) + 1))
            return self.refuse(
                503,
                "inbox full",
                f"{r.inbox.max_ids} ids are still inside their {r.inbox.keep_ids_s:g} s dedup "
                "window; refusing rather than forgetting one (retry later)",
                doc=doc,
            )
        if outcome == "duplicate":
            # Already stored once (a retry after a lost answer, or a replay):
            # say yes again, do nothing.
            self.set_header("Content-Type", "application/json")
            self.finish(b'{"status":"duplicate"}')
            r._note(self._receipt(200, "duplicate (absorbed)", doc, self.started_ns))
            return
        if mode == "slow":
            # The anti-pattern: doing the work before answering. The provider
            # gives up waiting and retries; the inbox absorbs the retry.
            r._acked[msg_id] = self._receipt(200, "processed (answered late)", doc, self.started_ns)
            r.process_one(msg_id, body)
            await asyncio.sleep(r.slow_s)
            if not self.request.connection.stream.closed():
                self.finish(b'{"status":"processed"}')
            return
        self.set_header("Content-Type", "application/json")
        self.finish(b'{"status":"accepted"}')  # stored, so the answer is true...
        r.wake_worker()  # ...and the work runs after it, on a later loop turn


def quiet_log(handler: RequestHandler) -> None:
    """No access log: refusals and failures are the demo, not errors to shout
    about (they are in ``Receiver.receipts``), and log lines printed from a
    server thread would land in whichever notebook cell runs next."""


def routes(receiver: Receiver) -> list:
    return [(r"/webhook", WebhookHandler, {"receiver": receiver})]
