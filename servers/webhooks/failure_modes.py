"""Ways to break the receiver on purpose, so the notebook can watch the provider cope.

Beside the receiver's core (``receiver.py``), never part of a real one:

* ``healthy``: the core's behaviour.
* ``500``: every request fails; ``flaky``: ``flaky_percent`` of them fail at random.
* ``429``: asks the provider to slow down, with ``Retry-After``.
* ``410``: asks the provider to stop (it disables the endpoint).
* ``slow``: the anti-pattern: does the work inline and answers after
  ``slow_s``, beyond the provider's timeout; the provider retries and the
  inbox absorbs the retry.
* ``pause_processing()``: stores and acknowledges but processes nothing, the
  state of a receiver that died right after answering.

"Down" is the real thing: the notebook stops the receiver's server.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

MODES = ("healthy", "500", "slow", "flaky", "429", "410")


class FailureModes:
    """Mixed into ``Receiver``: the mode and its knobs."""

    def _init_modes(self, slow_s: float, retry_after_s: int, seed: int | None) -> None:
        self.slow_s = slow_s
        self.retry_after_s = retry_after_s
        self.mode = "healthy"
        self.flaky_percent = 50
        self.processing_paused = False
        self._rng = random.Random(seed)

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


def fail_before_storing(handler: Any, doc: dict) -> bool:
    """Answer as the mode says before anything is stored (True: answered)."""
    r, mode = handler.receiver, handler.receiver.mode
    if mode == "500" or (mode == "flaky" and r._rng.uniform(0, 100) < r.flaky_percent):
        handler.refuse(500, f"mode {mode}", "simulated application error", doc=doc)
    elif mode == "429":
        handler.set_header("Retry-After", str(r.retry_after_s))
        handler.refuse(429, "mode 429", "slow down", doc=doc)
    elif mode == "410":
        handler.refuse(410, "mode 410", "this endpoint is gone: stop sending", doc=doc)
    else:
        return False
    return True


async def answer_late(handler: Any, msg_id: str, body: bytes, doc: dict) -> None:
    """The ``slow`` mode: work before answering. The provider gives up waiting
    and retries; the inbox absorbs the retry."""
    r = handler.receiver
    r._acked[msg_id] = handler.receipt(200, "processed (answered late)", doc, handler.started_ns)
    r.process_one(msg_id, body)
    await asyncio.sleep(r.slow_s)
    if not handler.request.connection.stream.closed():
        handler.finish(b'{"status":"processed"}')
