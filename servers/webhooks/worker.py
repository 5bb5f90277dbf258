"""The receiver's inbox worker: process stored messages after the 2xx.

Beside the receiver's core (``receiver.py``), whose handler stores a message,
answers, and wakes this worker. The worker runs on the receiver's loop,
takes due messages from the inbox and hands each to ``Receiver.process_one``
(one transaction: the work and the mark "processed"). A message whose work
raised stays pending and is due again after ``RETRY_S``; one acknowledged by
an earlier run (a crash after the 2xx) is found in the file at the next
start and processed then.
"""

from __future__ import annotations

import asyncio

RETRY_S = (0.05, 0.2, 1.0, 5.0)  # waits before processing a failed message again


class InboxWorker:
    """Mixed into ``Receiver``: needs ``self.inbox``, ``self._lock``,
    ``self.clock``, ``self.processing_paused`` and ``self.process_one``."""

    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

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

    def start_worker(self) -> None:
        """Start processing on the running event loop (call it on the server's
        loop thread, as ``Receiver.app_factory`` does at every start)."""
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
