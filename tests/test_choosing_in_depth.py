"""Notebook 05_choosing_in_depth: its exercise checkers, tested both ways, and
its feature-matrix table, which must be the one lab.recommend holds."""

from __future__ import annotations

import json
from pathlib import Path

from lab import recommend
from lab.exercises import load_solution
from lab.exercises.choosing import check_break_even_rate, check_requests_per_event

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "05_choosing_in_depth.ipynb"


def test_requests_per_event_checker_both_ways():
    assert check_requests_per_event(load_solution("05_requests_per_event")["requests_per_event"])
    fb = check_requests_per_event(lambda rate, interval: 1.0)
    assert not fb and "20 requests per event" in str(fb)
    no_guard = check_requests_per_event(lambda rate, interval: 1 / (rate * interval))
    assert not no_guard and "ValueError" in str(no_guard)
    assert not check_requests_per_event("not a function")


def test_requests_per_event_quotes_the_measurement():
    measured = [{"transport": "short_polling", "rate_eps": 4.0, "requests": 50, "events": 10}]
    fb = check_requests_per_event(
        load_solution("05_requests_per_event")["requests_per_event"], measured
    )
    assert fb and any("5.0 requests per event" in m for m in fb.messages)


def test_break_even_rate_checker_both_ways():
    assert check_break_even_rate(load_solution("05_break_even_rate")["break_even_rate"])
    fb = check_break_even_rate(lambda poll, push, interval: poll / push)
    assert not fb and "interval" in str(fb)


def test_the_matrix_cell_is_the_recommenders_matrix():
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    tables = ["".join(c["source"]) for c in cells if "| Property |" in "".join(c["source"])]
    assert len(tables) == 1
    assert recommend.feature_matrix_markdown().strip() in tables[0]
