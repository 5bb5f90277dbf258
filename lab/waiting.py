"""The one way the lab waits: poll a condition until it holds, or give up.

Tests, notebooks and the clients' ``wait_connected``/``wait_for`` all wait
on a condition, never for a fixed time: the wait ends as soon as the thing
happened, and a slow machine only makes it take longer, not fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01
) -> bool:
    """Poll ``predicate()`` every ``interval`` s until it is true or ``timeout`` s pass.

    Returns whether it became true (checked once more at the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
