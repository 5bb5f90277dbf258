"""The one rule for resume cursors (servers.cursor) and for event types."""

import pytest

from servers.cursor import MAX_DIGITS, RESYNC, CursorError, parse_number, resolve
from servers.events import EventLog, check_event_type


@pytest.mark.parametrize(
    "raw, expected", [("0", 0), ("7", 7), ("0042", 42), ("9" * MAX_DIGITS, 10**MAX_DIGITS - 1)]
)
def test_ascii_digits_are_read(raw, expected):
    assert parse_number(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", " ", "²", "+5", "-1", "٣", "1.0", "1e3", " 5", "5 ", "0x10", "9" * 5000, "9" * 19, "五"],
)
def test_anything_else_is_refused_with_a_reason(raw):
    with pytest.raises(CursorError) as info:
        parse_number(raw, "after")
    assert "after" in str(info.value)


@pytest.mark.parametrize("raw", [True, False, None, 0.9, float("inf"), -1, 10**MAX_DIGITS, [], {}])
def test_json_values_that_are_not_whole_numbers_are_refused(raw):
    with pytest.raises(CursorError):
        parse_number(raw)


def test_json_ints_are_read():
    assert parse_number(3) == 3


@pytest.mark.parametrize("good", ["tick", "chat.message", "_resync", "a:b-c_d.e", "x" * 64])
def test_event_types_that_are_allowed(good):
    assert check_event_type(good) == good
    assert EventLog().append(good).type == good


@pytest.mark.parametrize(
    "bad", ["", "x\nid: 999999\ndata: forged", "a\rb", "with space", "é", "x" * 65, 5, None]
)
def test_event_types_that_could_forge_a_field_are_refused_where_events_are_made(bad):
    log = EventLog()
    with pytest.raises(ValueError):
        log.append(bad)
    assert log.last_seq == 0  # nothing was numbered


def test_resolve_replays_what_is_still_there():
    log = EventLog(capacity=3)
    for _ in range(5):
        log.append("tick")
    replay, notice = resolve(log, 3)
    assert [e.seq for e in replay] == [4, 5] and notice is None
    assert resolve(log, 5) == ([], None)


def test_resolve_says_which_events_are_gone():
    log = EventLog(capacity=3)
    for _ in range(6):
        log.append("tick")
    replay, notice = resolve(log, 1)
    assert [e.seq for e in replay] == [4, 5, 6]
    assert notice == {
        "type": RESYNC,
        "after": 1,
        "missed": [2, 3],
        "last_seq": 6,
        "reason": "the log no longer holds events 2..3",
    }


def test_resolve_refuses_a_cursor_from_the_future():
    log = EventLog()
    log.append("tick")
    with pytest.raises(CursorError, match="future"):
        resolve(log, 2)
