"""The webhook receiver: your app's endpoint that the provider POSTs to.

What a careful receiver does, in this order (``WebhookHandler.post``):

1. Refuse an oversized body (413) while reading it (``bodylimit``).
2. Verify the signature over the **raw body bytes** (400 for missing or
   malformed headers, 401 for a bad signature or a timestamp outside the
   5-minute window: a replayed old message).
3. Only then parse the JSON (400 if it is not JSON).
4. **Store, then acknowledge**: insert the message into the SQLite inbox and
   commit, and only then answer 2xx. A ``webhook-id`` already in the inbox
   is a retry or a replay: answered 200, not stored or processed again
   (at-least-once delivery means duplicates will come).
5. **Process after answering** (``Receiver.process_one``): the work is
   committed together with the mark "processed". If it raises, the message
   stays pending and is tried again; if the process dies, the next start
   finds it in the file.

At-least-once delivery + idempotent processing = effectively once. What
production adds, beside this file: ``inbox`` (the SQLite file and its
dedup window), ``worker`` (the loop that processes after the 2xx),
``signing``, ``bodylimit``; for the notebook, ``receipts`` (the receipt log
and counters) and ``failure_modes`` (500, flaky, slow, 429, 410).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tornado.web import Application, RequestHandler, stream_request_body

from ..hub import EventHub
from . import signing
from .failure_modes import FailureModes, answer_late, fail_before_storing
from .inbox import Inbox
from .receipts import Receipt, ReceiptHandler, ReceiptLog
from .worker import RETRY_S, InboxWorker

MAX_BODY_BYTES = 64 * 1024
KEEP_IDS_S = 3 * 24 * 3600  # Stripe retries for up to three days
MAX_IDS = 1_000_000


class Receiver(FailureModes, ReceiptLog, InboxWorker):
    """The receiver's state (``server.state``): secrets, inbox, what was processed.

    Outlives its server (stop, start: like a database). With ``inbox_path``
    the inbox is a file: a new ``Receiver`` (after a crash) processes what an
    earlier one acknowledged. Read from any thread; written on its loop."""

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
        self.clock = clock
        self._lock = threading.RLock()  # re-entrant: a handler may read counters mid-work
        self.inbox = Inbox(inbox_path or ":memory:", keep_ids_s, max_ids, clock)
        self._processed_once = self.inbox.processed_distinct()  # then +1 per commit: no scans
        self.handlers: list[Callable[[dict], Any]] = []  # the app's work, besides the inbox
        self._init_modes(slow_s, retry_after_s, seed)
        self._init_receipts()

    def app_factory(self) -> Callable[[EventHub], Application]:
        """For ``runtime.start("receiver", receiver.app_factory())``. Every
        start also starts the inbox worker, which first processes whatever
        an earlier run acknowledged and left pending."""

        def factory(hub: EventHub) -> Application:
            self.start_worker()
            return Application(routes(self), hub=hub, state=self, log_function=quiet_log)

        return factory

    def close(self) -> None:
        """Close the inbox file (stop the receiver's server first)."""
        with self._lock:
            self.inbox.close()

    # -- 4: store --------------------------------------------------------------------------
    def store(self, msg_id: str, body: bytes, receipt: Receipt | None = None) -> str:
        """Commit the message to the inbox: ``"new"``, ``"duplicate"`` or ``"full"``."""
        with self._lock:
            outcome = self.inbox.add(msg_id, body)
            if outcome == "duplicate":
                self.duplicates_absorbed += 1
            elif outcome == "new" and receipt is not None:
                self._acked[msg_id] = receipt
            return outcome

    # -- 5: process ------------------------------------------------------------------------
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
        error = None
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
            else:
                self.inbox.mark_processed_and_commit(msg_id)
                self._processed_once += 1  # status was pending: a first processing
        self._after_processing(msg_id, doc, error)
        return error is None


@stream_request_body
class WebhookHandler(ReceiptHandler):
    """``POST /webhook``: verify, store, acknowledge, then process. (Counting,
    receipts and the 413 while reading: ``receipts.ReceiptHandler``.)"""

    async def post(self) -> None:
        r = self.receiver
        if self.body_too_large:  # 1
            return self.refuse(413, "too large", self.too_large_reason())
        body = self.body  # 2: the raw bytes, exactly as signed
        try:
            msg_id = signing.verify(r.secrets, self.request.headers, body, r.clock(), r.tolerance_s)
        except signing.VerificationError as exc:
            kind = {400: "bad headers", 401: "not authentic"}[exc.status]
            return self.refuse(exc.status, kind, exc.reason)
        try:
            doc = json.loads(body)  # 3: parsed only now, after the signature held
        except (ValueError, RecursionError):
            return self.refuse(400, "not JSON", "the body is not valid JSON")
        if not isinstance(doc, dict):
            return self.refuse(400, "not JSON", "the body must be a JSON object")
        if fail_before_storing(self, doc):  # the notebook's 500 / flaky / 429 / 410
            return

        # 4: store before answering: once the 2xx is out, the provider forgets it.
        outcome = r.store(msg_id, body, self.receipt(200, "", doc, self.started_ns))
        if outcome == "full":  # the dedup window is full: refuse rather than forget an id
            self.set_header("Retry-After", str(int(r.inbox.retry_after_s()) + 1))
            return self.refuse(503, "inbox full", r.inbox.full_reason(), doc=doc)
        if outcome == "duplicate":  # a retry after a lost answer, or a replay: yes, again
            self.set_header("Content-Type", "application/json")
            self.finish(b'{"status":"duplicate"}')
            r._note(self.receipt(200, "duplicate (absorbed)", doc, self.started_ns))
            return
        if r.mode == "slow":  # the anti-pattern: the work before the answer
            return await answer_late(self, msg_id, body, doc)
        self.set_header("Content-Type", "application/json")
        self.finish(b'{"status":"accepted"}')  # stored, so the answer is true...
        r.wake_worker()  # ...5: and the work runs after it, on a later loop turn


def quiet_log(handler: RequestHandler) -> None:
    """No access log: refusals and failures are the demo, not errors to shout
    about (they are in ``Receiver.receipts``), and log lines printed from a
    server thread would land in whichever notebook cell runs next."""


def routes(receiver: Receiver) -> list:
    return [(r"/webhook", WebhookHandler, {"receiver": receiver})]
