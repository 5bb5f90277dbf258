"""The learner's turn: a cell after "click Fire event three times" checks
what the learner did and does only what is missing.

So a learner who clicked sees their own events counted, and a notebook run
top to bottom with nobody at the controls (Run All, the test run) still
exercises the same path: the cell fires the missing events itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lab.waiting import wait_until


def top_up(
    trigger: Any,
    want: int,
    *,
    since: int = 0,
    recorders: Iterable[Any] = (),
    timeout: float = 5.0,
) -> str:
    """Make sure ``trigger`` has fired ``want`` events since its count was ``since``.

    ``trigger`` is a :class:`lab.widgets.TriggerPanel` (anything with ``sent``,
    ``fire()`` and ``last_seq``). Fires only the missing events, then waits
    until every recorder has seen the last one. Returns a sentence saying who
    fired what, for the cell to print.
    """
    yours = max(0, trigger.sent - since)
    missing = max(0, want - yours)
    for _ in range(missing):
        trigger.fire()
    recorders = list(recorders)
    for recorder in recorders:
        # Wait for the arrival, never for a fixed time: a slow machine only waits longer.
        wait_until(lambda r=recorder: r.highest_seq >= trigger.last_seq, timeout=timeout)
    return _sentence(yours, missing, "event")


def act_unless_done(done: Callable[[], bool], act: Callable[[], Any], what: str) -> str:
    """Run ``act()`` only when ``done()`` says the learner has not already.

    For controls other than Fire event: "move the slider to 200", "pick
    'down' in the receiver's mode". Returns a sentence for the cell to print.
    """
    if done():
        return f"You did it: {what}."
    act()
    return f"Nobody did it yet, so this cell did: {what}."


def _sentence(yours: int, missing: int, noun: str) -> str:
    def count(n: int) -> str:
        return f"{n} {noun}" + ("" if n == 1 else "s")

    if missing == 0:
        return f"You fired {count(yours)}; this cell fired none."
    if yours == 0:
        return f"Nobody clicked, so this cell fired {count(missing)} for you."
    return f"You fired {count(yours)}; this cell fired the other {missing}."
