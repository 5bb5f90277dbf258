"""Checkers for notebook 05's exercises: specific feedback, never an exception.

1. ``check_percentile(fn)``: the learner writes ``percentile(values, p)``
   with linear interpolation between closest ranks (what the harness uses).
2. ``check_pick_transport(fn)``: the learner writes ``pick_transport(needs)``
   (a ``lab.recommend.Needs``) for the seed article's use cases and the ones
   where none of the three transports fits; the checker names each case it
   gets wrong and why.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import fields

from benchmarks.stats import percentile as reference_percentile
from lab.recommend import Needs

from . import Feedback

_VECTORS = [
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5.5, "the median of 1..10 lies between 5 and 6"),
    ([10, 20, 30, 40], 95, 38.5, "rank (4-1)*0.95 = 2.85: 30 + 0.85*(40-30)"),
    ([7.0], 99, 7.0, "a single value is every percentile"),
    ([5, 1, 4, 2, 3], 50, 3.0, "the values must be sorted first"),
    ([3, 1, 2], 0, 1.0, "p0 is the minimum"),
    ([3, 1, 2], 100, 3.0, "p100 is the maximum (and must not index past the end)"),
    ([0.5, 0.1, 0.9, 0.3], 25, 0.25, "rank 0.75 between 0.1 and 0.3"),
]


def check_percentile(fn: Callable) -> Feedback:
    fb = Feedback("Exercise 1: percentile with linear interpolation")
    if not callable(fn):
        return fb.fail("pass the function itself, e.g. check_percentile(percentile)")
    for values, p, expected, why in _VECTORS:
        original = list(values)
        try:
            got = fn(values, p)
        except Exception as exc:  # the learner's bug is feedback, not a crash
            fb.fail(f"percentile({original}, {p}) raised {type(exc).__name__}: {exc} ({why})")
            continue
        if values != original:
            fb.fail("your function reordered the caller's list: sort a copy (sorted(values))")
        if not isinstance(got, (int, float)) or not math.isclose(got, expected, abs_tol=1e-9):
            hint = why
            nearest = sorted(original)[round((len(original) - 1) * p / 100)]
            if isinstance(got, (int, float)) and math.isclose(got, nearest) and got != expected:
                hint += "; you returned the nearest rank: interpolate between the two neighbours"
            fb.fail(f"percentile({original}, {p}) = {got!r}, expected {expected} ({hint})")
    rng = random.Random(5)
    for _ in range(50):
        values = [rng.uniform(0, 100) for _ in range(rng.randint(1, 40))]
        p = rng.choice([50, 90, 95, 99, 99.9])
        try:
            got = fn(values, p)
        except Exception:
            got = None
        if got is None or not math.isclose(got, reference_percentile(values, p), abs_tol=1e-9):
            fb.fail(f"random check failed: {len(values)} values, p={p}: got {got!r}")
            break
    try:
        fn([], 50)
    except ValueError:
        pass
    except Exception as exc:
        fb.fail(f"an empty list should raise ValueError, not {type(exc).__name__}")
    else:
        fb.fail("an empty list has no percentile: raise ValueError")
    if fb.passed:
        fb.note("matches benchmarks.stats.percentile on every case, including p0 and p100")
    return fb


# (needs, expected, why): the seed's use cases, then the cases where none of
# the three transports is the answer (issue 18). Each agrees with lab.recommend.
SEED_CASES = [
    (Needs("server", must_survive_offline=True, events_per_second=0.1), "webhooks",
     "mail bounces: the mail service POSTs to your server and retries while it is down"),
    (Needs("server", events_per_second=0.5), "webhooks",
     "rare notifications to a server: nobody needs to hold a connection open"),
    (Needs("browser", "both", events_per_second=5), "websocket",
     "chat: the browser sends as well as receives"),
    (Needs("browser", events_per_second=200), "sse",
     "a stock ticker page: one-way to a browser, EventSource built in"),
    (Needs("server", events_per_second=500), "ndjson",
     "market data into a trading server: one long response beats a POST per event"),
    (Needs("server", events_per_second=1, reachable=False), "ndjson",
     "a backend behind NAT: no webhook can reach it, so it dials out and holds a stream"),
    (Needs("server", events_per_second=0.001, reachable=False), "short_polling",
     "a backend behind NAT, a few events a day: a poll now and then holds nothing open"),
    (Needs("browser", may_be_closed=True, mobile=True), "push_service",
     "a closed app holds no connection: only APNs / FCM / Web Push can wake it"),
    (Needs("browser", "from_consumer", events_per_second=0.2), "http_posts",
     "devices reporting readings: plain POSTs, nothing to push"),
]  # fmt: skip
ANSWER_KEYS = ("webhooks", "websocket", "sse", "ndjson", "short_polling", "long_polling",
               "push_service", "http_posts")  # fmt: skip


def _describe(needs: Needs) -> str:
    defaults = Needs()
    changed = [
        f"{f.name}={getattr(needs, f.name)!r}"
        for f in fields(needs)
        if f.name == "consumer" or getattr(needs, f.name) != getattr(defaults, f.name)
    ]
    return f"Needs({', '.join(changed)})"


def check_pick_transport(fn: Callable) -> Feedback:
    fb = Feedback("Exercise 2: pick the transport (or none of them)")
    if not callable(fn):
        return fb.fail("pass the function itself, e.g. check_pick_transport(pick_transport)")
    for needs, expected, why in SEED_CASES:
        try:
            got = fn(needs)
        except Exception as exc:
            fb.fail(f"pick_transport({_describe(needs)}) raised {type(exc).__name__}: {exc}")
            continue
        if got != expected:
            hint = "" if got in ANSWER_KEYS else f" (answers are {', '.join(ANSWER_KEYS)})"
            fb.fail(f"pick_transport({_describe(needs)}) = {got!r}, expected {expected!r}: "
                    f"{why}{hint}")  # fmt: skip
    if fb.passed:
        fb.note(f"all {len(SEED_CASES)} use cases right; compare with lab.recommend.RULES")
    return fb


# -- 05_choosing_in_depth ------------------------------------------------------------
def _numeric_cases(fb: Feedback, fn: Callable, name: str, cases: list, bad: list) -> Feedback:
    """``cases``: (args, expected, why); ``bad``: args that must raise ``ValueError``."""
    if not callable(fn):
        return fb.fail(f"pass the function itself, e.g. check_{name}({name})")
    for args, want, why in cases:
        try:
            got = fn(*args)
        except Exception as exc:
            fb.fail(f"{name}{args} raised {type(exc).__name__}: {exc} ({why})")
            continue
        if not isinstance(got, (int, float)) or not math.isclose(got, want, rel_tol=1e-6):
            fb.fail(f"{name}{args} returned {got!r}, expected {want:g}: {why}")
    for args in bad:
        try:
            fn(*args)
        except ValueError:
            continue
        except Exception as exc:
            fb.fail(f"{name}{args} raised {type(exc).__name__}; raise ValueError instead")
            continue
        fb.fail(f"{name}{args} returned a number; with no events or a bad input, raise ValueError")
    return fb


def check_requests_per_event(fn: Callable, measured: list[dict] | None = None) -> Feedback:
    """In depth, Exercise 1: ``requests_per_event(rate_eps, interval_s)``."""
    fb = Feedback("Exercise 1: requests per event")
    cases = [
        ((1, 0.05), 20.0, "one event a second, 20 polls a second: 20 requests per event"),
        ((0.1, 1.0), 10.0, "one event every 10 s, one poll a second"),
        ((200, 0.05), 0.1, "200 events/s: each poll collects 10 events, 0.1 request per event"),
        ((4, 0.05), 5.0, "the notebook's lowest rate"),
    ]
    _numeric_cases(fb, fn, "requests_per_event", cases, [(0, 0.05), (-1, 0.05)])
    if fb.passed:
        fb.note("polls per second divided by events per second: 1 / (rate x interval)")
        low = [c for c in measured or [] if c["transport"] == "short_polling" and c["requests"]]
        if low:
            c = min(low, key=lambda c: c["rate_eps"])
            fb.note(
                f"measured at {c['rate_eps']:g} events/s: {c['requests'] / c['events']:.1f} "
                "requests per event (the window is short, so it wobbles)"
            )
    return fb


def check_break_even_rate(fn: Callable) -> Feedback:
    """In depth, Exercise 2: ``break_even_rate(poll_bytes, push_bytes, interval_s)``."""
    fb = Feedback("Exercise 2: the break-even rate")
    cases = [
        ((400, 40, 0.05), 200.0, "400 / (40 x 0.05): above 200 events/s polling is cheaper"),
        ((400, 40, 1.0), 10.0, "poll once a second: break-even at 10 events/s"),
        (
            (300, 30, 0.5),
            20.0,
            "the interval matters: polling twice a second breaks even at 20 events/s",
        ),
    ]
    bad = [(0, 40, 0.05), (400, 0, 0.05), (400, 40, 0)]
    _numeric_cases(fb, fn, "break_even_rate", cases, bad)
    if fb.passed:
        fb.note("poll_bytes / (rate x interval) = push_bytes, solved for the rate")
    return fb
