"""Checkers for notebook 06's exercises: specific feedback, never an exception.

1. ``check_heartbeat_plan(fn)``: the learner writes
   ``heartbeat_plan(idle_timeout_s)`` returning ``(interval_s, watchdog_s)``:
   the server's heartbeat interval and the client's watchdog for a network
   whose NAT forgets connections idle for ``idle_timeout_s``.
2. ``check_process_once(cls)``: the learner writes ``OnceProcessor``, whose
   ``handle(event)`` applies each event once however often it arrives, and
   in whatever order (webhook retries reorder).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace

from . import Feedback

IDLE_TIMEOUTS = (1.0, 30.0, 60.0, 120.0, 300.0)


def check_heartbeat_plan(fn: Callable) -> Feedback:
    fb = Feedback("Exercise 1: a heartbeat plan for a NAT")
    if not callable(fn):
        return fb.fail("pass the function itself, e.g. check_heartbeat_plan(heartbeat_plan)")
    for idle in IDLE_TIMEOUTS:
        try:
            interval, watchdog = fn(idle)
        except Exception as exc:  # the learner's bug is feedback, not a crash
            return fb.fail(f"heartbeat_plan({idle:g}) raised {type(exc).__name__}: {exc}")
        where = f"idle timeout {idle:g} s, interval {interval:g} s, watchdog {watchdog:g} s"
        if not 0 < interval < idle:
            fb.fail(f"{where}: the interval must be shorter than the idle timeout, or the NAT "
                    "forgets the connection between two heartbeats")  # fmt: skip
        elif interval > idle / 2:
            fb.fail(f"{where}: one late heartbeat (latency, jitter, a busy server) would let "
                    "the timer run out; send at least two per idle timeout")  # fmt: skip
        elif interval < idle / 10:
            fb.fail(f"{where}: more than ten heartbeats per idle timeout wakes the radio for "
                    "nothing (see the cost plot)")  # fmt: skip
        if watchdog < 2 * interval:
            fb.fail(f"{where}: a watchdog shorter than two intervals fires on one late "
                    "heartbeat and reconnects a healthy connection")  # fmt: skip
        elif watchdog > 5 * interval:
            fb.fail(f"{where}: a dead connection goes unnoticed for more than five intervals; "
                    "events wait all that time")  # fmt: skip
        if not fb.passed:
            break  # one idle timeout's feedback is enough to act on
    if fb.passed:
        interval, watchdog = fn(30.0)
        fb.note(f"for the 30 s carrier NAT: a heartbeat every {interval:g} s, "
                f"{3600 / interval:.0f} radio wake-ups an hour; a dead connection noticed "
                f"within {watchdog:g} s")  # fmt: skip
    return fb


def _events(seqs: list[int]) -> list[SimpleNamespace]:
    return [SimpleNamespace(seq=s, type="weather.tick", payload={"n": s}) for s in seqs]


CASES = [
    ([1, 2, 3], "three events, each once"),
    ([1, 2, 2, 3, 3, 3], "a stream that reconnected and got a replay"),
    ([1, 3, 2, 3, 1], "webhook retries: out of order, and twice"),
    ([5, 4, 4, 6], "a late retry of an older event after a newer one"),
]


def check_process_once(cls: Callable) -> Feedback:
    fb = Feedback("Exercise 2: process each event once")
    if not callable(cls):
        return fb.fail("pass the class itself, e.g. check_process_once(OnceProcessor)")
    for seqs, story in CASES:
        applied: Counter = Counter()
        try:
            proc = cls(lambda e, c=applied: c.update([e.seq]))
            answers = [proc.handle(e) for e in _events(seqs)]
        except Exception as exc:  # the learner's bug is feedback, not a crash
            return fb.fail(f"{story} {seqs}: raised {type(exc).__name__}: {exc}")
        twice = sorted(s for s, n in applied.items() if n > 1)
        never = sorted(set(seqs) - set(applied))
        if twice:
            fb.fail(f"{story} {seqs}: applied {twice} more than once")
        if never:
            fb.fail(f"{story} {seqs}: never applied {never} (dedupe by id, not by the "
                    "highest seq seen: retries arrive out of order)")  # fmt: skip
        seen: set = set()
        expected = [not (s in seen or seen.add(s)) for s in seqs]
        if not twice and not never and answers != expected:
            fb.fail(f"{story} {seqs}: handle() should return {expected} (True: applied now), "
                    f"got {answers}")  # fmt: skip
    return fb
