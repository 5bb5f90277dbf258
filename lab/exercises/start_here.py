"""Checkers for notebook 00's exercises."""

from __future__ import annotations

import math
from collections.abc import Callable

import requests
from tornado.web import Application

from servers import runtime

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


# The checker's cases: (after, the seqs to answer) with 3 events published,
# then cursors the server never handed out, each with why it is one.
GOOD_CURSORS = [("0", [1, 2, 3]), ("2", [3]), ("3", [])]
BAD_CURSORS = [
    ("abc", "it is not a number"),
    ("-1", "int() reads it, but no seq is below 0"),
    ("99", "it is from the future: the last seq handed out is 3"),
]


def check_cursor_handler(handler: type) -> Feedback:
    """Exercise 2: ``handler`` (a RequestHandler given ``hub=``) answers
    ``GET ?after=N`` with ``{"events": [...]}``, the events after ``N``, and
    a 400 for a cursor the server never handed out. A long-poll handler
    passes too: the checker sends ``timeout=0.2`` for the empty answer."""
    fb = Feedback("Exercise 2: a poll handler that checks its cursor")
    crashes: list[BaseException] = []

    class Watched(handler):  # type: ignore[misc, valid-type]
        def log_exception(self, typ, value, tb):  # a 500: told below, not as a traceback
            crashes.append(value)

    def app(hub):
        return Application([(r"/poll", Watched, {"hub": hub})], log_function=lambda h: None)

    server = runtime.start("exercise-00", app)
    try:
        for n in range(3):
            server.publish("order.created", {"n": n + 1})
        for after, want in GOOD_CURSORS:
            crashes.clear()
            try:
                resp = _get(server.url, after)
                seqs = (
                    [e["seq"] for e in resp.json()["events"]] if resp.status_code == 200 else None
                )
            except requests.RequestException as exc:
                return fb.fail(f"?after={after}: no answer within 3 s ({type(exc).__name__})")
            except (ValueError, KeyError, TypeError):
                return fb.fail(f'?after={after}: answer a JSON object {{"events": [...]}}')
            if seqs is None:
                fb.fail(f"?after={after}: status {resp.status_code}, expected 200 {_why(crashes)}")
            elif seqs != want:
                fb.fail(
                    f"?after={after} answered seqs {seqs}, expected {want}: "
                    "only the events after the client's cursor"
                )
        for after, why in BAD_CURSORS:
            crashes.clear()
            try:
                status = _get(server.url, after).status_code
            except requests.RequestException as exc:
                return fb.fail(f"?after={after}: no answer within 3 s ({type(exc).__name__})")
            if status != 400:
                fb.fail(f"?after={after}: status {status} {_why(crashes)}, expected 400: {why}")
    finally:
        server.stop()
    if fb.passed:
        fb.note("events after the cursor, and a 400 with a reason for any other cursor")
    return fb


def _get(url: str, after: str) -> requests.Response:
    return requests.get(f"{url}/poll", params={"after": after, "timeout": 0.2}, timeout=3)


def _why(crashes: list[BaseException]) -> str:
    return f"(the handler raised {crashes[-1]!r})" if crashes else ""
