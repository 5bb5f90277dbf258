"""Checkers for notebook 00's exercises."""

from __future__ import annotations

import math
from collections.abc import Callable

from . import Feedback


def check_short_poll_cost(fn: Callable[[float, float], dict], measured=None) -> Feedback:
    """Exercise 1: ``fn(poll_interval_s, events_per_minute)`` must return
    ``requests_per_minute``, ``requests_per_event`` and ``mean_latency_s``
    for short polling (events arriving at random times).

    ``measured``: optional ``DeliveryResult`` list from the sweep, to compare
    the model with what this machine just measured.
    """
    fb = Feedback("Exercise 1: the cost of short polling")
    cases = [(1.0, 6.0), (0.25, 60.0), (5.0, 1.0)]
    for interval, rate in cases:
        try:
            got = fn(interval, rate)
        except Exception as exc:  # feedback, not a traceback
            return fb.fail(f"calling it with ({interval}, {rate}) raised {exc!r}")
        if not isinstance(got, dict):
            return fb.fail(f"it should return a dict, got {type(got).__name__}")
        missing = {"requests_per_minute", "requests_per_event", "mean_latency_s"} - set(got)
        if missing:
            return fb.fail(f"the dict is missing {sorted(missing)}")
        want_rpm = 60.0 / interval
        if not math.isclose(got["requests_per_minute"], want_rpm, rel_tol=1e-6):
            fb.fail(
                f"interval {interval} s: requests_per_minute is {got['requests_per_minute']}, "
                f"but a poll every {interval} s makes {want_rpm:g} requests a minute, "
                "news or not"
            )
        if not math.isclose(got["requests_per_event"], want_rpm / rate, rel_tol=1e-6):
            fb.fail(
                f"interval {interval} s, {rate:g} events/min: requests_per_event should be "
                f"requests per minute / events per minute = {want_rpm / rate:g}"
            )
        if math.isclose(got["mean_latency_s"], interval, rel_tol=1e-6):
            fb.fail(
                "mean_latency_s equals the whole interval: an event lands at a random moment "
                "between two polls, so on average it waits half an interval"
            )
        elif not math.isclose(got["mean_latency_s"], interval / 2, rel_tol=1e-6):
            fb.fail(f"interval {interval} s: mean_latency_s should be {interval / 2:g} s")
        if not fb.passed:
            return fb
    fb.note("the formulas match: cost grows as 1/interval, latency as interval/2")
    for result in measured or []:
        model = fn(result.poll_interval_s, 60.0)["mean_latency_s"] * 1000
        fb.note(
            f"poll every {result.poll_interval_s:g} s: model {model:.0f} ms, "
            f"measured median {result.median_latency_ms:.0f} ms"
        )
    return fb


def check_find_gaps(fn: Callable[[list[int]], tuple[list[int], list[int]]]) -> Feedback:
    """Exercise 2: ``fn(received_seqs)`` returns ``(missing, duplicated)``:
    the seqs never received below the highest one, and the seqs received
    more than once, each sorted and listed once."""
    fb = Feedback("Exercise 2: spot lost and duplicated events")
    cases = [
        ([1, 2, 3], ([], [])),
        ([1, 3, 4], ([2], [])),
        ([1, 2, 2, 3], ([], [2])),
        ([3, 1, 5, 5, 5, 2], ([4], [5])),
        ([2, 6, 4, 4, 6], ([1, 3, 5], [4, 6])),
        ([], ([], [])),
    ]
    hints = {
        0: "with nothing missing and nothing repeated, both lists must be empty",
        1: "seq 2 never arrived although 3 did: that is a gap",
        2: "seq 2 arrived twice: it is a duplicate (list it once)",
        3: "arrivals can come out of order; sort before you look for gaps",
        4: "sequence numbers start at 1, so a stream that starts at 2 lost seq 1",
        5: "an empty list has no gaps and no duplicates",
    }
    for i, (received, want) in enumerate(cases):
        try:
            got = fn(list(received))
            got = (list(got[0]), list(got[1]))
        except Exception as exc:
            return fb.fail(f"find_gaps({received}) raised {exc!r}")
        if got != (list(want[0]), list(want[1])):
            fb.fail(f"find_gaps({received}) returned {got}, expected {want}: {hints[i]}")
    if fb.passed:
        fb.note("this is exactly how the arrival counters decide lost and duplicated")
    return fb
