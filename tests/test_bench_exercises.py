"""Notebook 05's checkers: they accept the solutions and reject typical
wrong answers with specific messages, never raising."""

from __future__ import annotations

from lab.exercises import load_solution
from lab.exercises.choosing import SEED_CASES, check_percentile, check_pick_transport
from lab.recommend import recommend


def test_percentile_solution_passes():
    assert check_percentile(load_solution("05_percentile")["percentile"])


def test_nearest_rank_is_named():
    def nearest(values, p):
        s = sorted(values)
        return s[round((len(s) - 1) * p / 100)]

    fb = check_percentile(nearest)
    assert not fb and any("nearest rank" in m for m in fb.messages)


def test_unsorted_and_mutating_answers_are_named():
    def unsorted(values, p):
        if not values:
            raise ValueError
        k = (len(values) - 1) * p / 100
        lo = int(k)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (values[hi] - values[lo]) * (k - lo)

    assert not check_percentile(unsorted)

    def mutating(values, p):
        values.sort()
        return load_solution("05_percentile")["percentile"](values, p)

    fb = check_percentile(mutating)
    assert not fb and any("reordered" in m for m in fb.messages)


def test_crashing_answers_are_feedback_not_exceptions():
    def boom(*args):
        raise ZeroDivisionError("oops")

    fb = check_percentile(boom)
    assert not fb and any("ZeroDivisionError" in m for m in fb.messages)
    fb = check_pick_transport(boom)
    assert not fb and any("ZeroDivisionError" in m for m in fb.messages)
    assert not check_percentile("not a function")
    assert not check_pick_transport(None)


def test_pick_transport_solution_passes_and_wrong_one_is_explained():
    assert check_pick_transport(load_solution("05_pick_transport")["pick_transport"])
    fb = check_pick_transport(lambda needs: "websocket")
    assert not fb and any("mail bounces" in m for m in fb.messages)
    seed_only = load_solution("05_pick_transport")["pick_transport"]
    fb = check_pick_transport(lambda n: "sse" if n.consumer == "browser" else seed_only(n))
    assert not fb and any("APNs" in m for m in fb.messages)
    assert any("reachable=False" in m for m in check_pick_transport(lambda n: "x").messages)


def test_exercise_cases_agree_with_the_recommender():
    for needs, expected, why in SEED_CASES:
        assert recommend(needs).transport == expected, why
