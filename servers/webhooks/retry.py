"""What the provider does with an answer: deliver, retry later, or give up.

Hardening beside the delivery loop (``provider.py``), which asks two things:

* ``classify(status, error, retry_after)``: what an attempt's outcome means.
  2xx: delivered. 410 Gone: the receiver asked to be disabled; stop.
  Anything else (3xx included: redirects are not followed, see ``ssrf``), a
  timeout or a refused connection: try again.
* ``RetryPolicy.next_delay(attempts_done, retry_after)``: how long to wait
  before trying again, or None when the schedule is used up (dead letter).

The default schedule is Svix's (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h), **divided by 1000** so a notebook sees it in about 100 s instead of
about 28 hours.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections.abc import Sequence
from datetime import timezone

from .ssrf import URLRefusedError
from .wire import ProtocolError

# Svix's published schedule: delay before each attempt, in seconds.
SVIX_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def compressed(schedule: Sequence[float] = SVIX_SCHEDULE_S, factor: float = 1000.0) -> tuple:
    """A real schedule made fast enough for a demo: every delay / ``factor``."""
    return tuple(d / factor for d in schedule)


DEMO_SCHEDULE_S = compressed(
    SVIX_SCHEDULE_S, 1000
)  # 0, 5 ms, 0.3 s, 1.8 s, 7.2 s, 18 s, 36 s, 36 s


def exponential_schedule(
    attempts: int, base: float, factor: float = 2.0, cap: float = 3600.0
) -> tuple:
    """0 for the first attempt, then base, base*factor, ... capped: the
    textbook exponential backoff (jitter is added by ``RetryPolicy``)."""
    return (0.0,) + tuple(min(cap, base * factor**i) for i in range(attempts - 1))


class RetryPolicy:
    """When to try again. ``schedule[i]`` is the delay before attempt i+1.

    ``jitter`` spreads each delay uniformly over ±jitter of itself, so
    thousands of deliveries that failed together (a receiver outage) do not
    come back together and knock the recovering receiver over again.
    """

    def __init__(
        self,
        schedule: Sequence[float] = DEMO_SCHEDULE_S,
        jitter: float = 0.2,
        rng: random.Random | None = None,
        max_retry_after_s: float = 60.0,
    ) -> None:
        if not schedule:
            raise ValueError("the schedule needs at least one attempt")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction between 0 and 1")
        self.schedule = tuple(float(d) for d in schedule)
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.max_retry_after_s = max_retry_after_s

    @property
    def max_attempts(self) -> int:
        return len(self.schedule)

    def next_delay(self, attempts_done: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None: give up (dead letter)."""
        if attempts_done >= len(self.schedule):
            return None
        delay = self.schedule[attempts_done]
        if self.jitter:
            delay *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        if retry_after is not None:
            # The receiver said when it can take more: never come back sooner.
            delay = max(delay, min(retry_after, self.max_retry_after_s))
        return delay


_DELTA_SECONDS = re.compile(r"[0-9]{1,18}")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` is delta-seconds or an HTTP date (RFC 9110, 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):  # ASCII digits only: "²" and "٣" are not seconds
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# No answer at all: a URL refused at delivery time (``ssrf``), a timeout, a
# refused or broken connection, a malformed response (``wire``).
NO_ANSWER = (
    URLRefusedError,
    TimeoutError,
    asyncio.TimeoutError,
    OSError,
    ProtocolError,
    ValueError,
)


def no_answer(exc: BaseException, timeout_s: float) -> str:
    """The error logged for an attempt that got no HTTP answer."""
    if isinstance(exc, URLRefusedError):
        return f"refused at delivery time: {exc}"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"timed out after {timeout_s:g} s"
    return f"{type(exc).__name__}: {exc}"


GONE_REASON = "HTTP 410 Gone: the receiver asked to stop; subscription disabled"


def classify(
    status: int | None, error: str | None, retry_after: float | None
) -> tuple[str, str | None]:
    """``(outcome, error)`` of one attempt: ``"delivered"``, ``"gone"`` (410:
    disable the endpoint) or ``"failed"`` (retry or dead-letter it), with the
    error to log. ``status`` None: no answer (``error`` says why)."""
    if status is not None and 200 <= status < 300:
        return "delivered", None
    if status == 410:
        return "gone", GONE_REASON
    if status is not None:
        error = f"HTTP {status}" + (" (redirect not followed)" if 300 <= status < 400 else "")
        if retry_after is not None:
            error += f", Retry-After {retry_after:g} s"
    return "failed", error
