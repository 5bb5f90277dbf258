"""The event model, the bounded log and the arrival recorder."""

from __future__ import annotations

import threading
import time

import pytest

from lab.recorder import ArrivalRecorder
from servers.events import Event, EventLog


def test_event_round_trips_through_json():
    event = Event(7, "order.created", {"id": 1}, 123)
    assert Event.from_json(event.to_json()) == event
    assert event.to_json() == '{"seq":7,"type":"order.created","payload":{"id":1},"sent_ns":123}'


@pytest.mark.parametrize("bad", ['{"type": "x"}', '{"seq": "one", "type": "x"}', "[]"])
def test_malformed_events_are_rejected_clearly(bad):
    with pytest.raises(ValueError, match="not an event"):
        Event.from_json(bad)


def test_log_numbers_events_and_stamps_monotonic_time():
    log = EventLog()
    before = time.monotonic_ns()
    a, b = log.append("a"), log.append("b", {"x": 1})
    assert (a.seq, b.seq) == (1, 2)
    assert before <= a.sent_ns <= b.sent_ns <= time.monotonic_ns()


def test_log_replays_from_a_cursor_and_reports_truncation():
    log = EventLog(capacity=3)
    for i in range(5):
        log.append("t", {"i": i})
    events, truncated = log.since(3)
    assert [e.seq for e in events] == [4, 5] and not truncated
    events, truncated = log.since(1)  # 2 is gone: the caller missed it
    assert [e.seq for e in events] == [3, 4, 5] and truncated
    assert log.since(2) == (log.since(2)[0], False)


@pytest.mark.parametrize("cursor, message", [(-1, "negative"), (99, "future")])
def test_log_rejects_cursors_it_never_handed_out(cursor, message):
    log = EventLog()
    log.append("t")
    with pytest.raises(ValueError, match=message):
        log.since(cursor)


def test_log_appends_from_many_threads_get_unique_consecutive_seqs():
    log = EventLog(capacity=10_000)
    threads = [
        threading.Thread(target=lambda: [log.append("t") for _ in range(1000)]) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events, _ = log.since(0)
    assert sorted(e.seq for e in events) == list(range(1, 4001))


def test_log_is_bounded_in_bytes_and_evicted_events_count_as_gone():
    log = EventLog(capacity=1000, max_bytes=10_000)
    for i in range(50):
        log.append("big", {"i": i, "pad": "x" * 900})
    assert log.bytes <= 10_000
    held = log.since(log.last_seq - len(log))[0]
    assert log.bytes == sum(len(e.to_json()) for e in held)
    assert 5 <= len(log) <= 11 and held[-1].seq == 50
    events, truncated = log.since(1)  # events 2.. are partly gone: resync
    assert truncated and events == held
    events, truncated = log.since(held[0].seq - 1)
    assert not truncated and events == held
    one_too_big = log.append("huge", {"pad": "x" * 20_000})
    assert len(log) == 0 and log.bytes == 0  # not even the newest is kept
    assert log.since(one_too_big.seq) == ([], False)
    assert log.since(one_too_big.seq - 1) == ([], True)


def test_count_eviction_keeps_the_byte_total_right():
    log = EventLog(capacity=3, max_bytes=10**6)
    for i in range(10):
        log.append("t", {"i": i})
    assert [e.seq for e in log.since(7)[0]] == [8, 9, 10]
    assert log.bytes == sum(len(e.to_json()) for e in log.since(7)[0])


def test_event_json_is_encoded_once_and_stays_equal():
    event = Event(1, "t", {"a": 1}, 5)
    assert event.to_json() is event.to_json()
    assert event == Event(1, "t", {"a": 1}, 5)  # the cached text is not a field


def test_recorder_computes_exact_latency():
    rec = ArrivalRecorder()
    arrival = rec.record(Event(1, "t", {}, sent_ns=1_000_000), received_ns=3_500_000)
    assert arrival.latency_ms == 2.5


def test_recorder_detects_gaps_and_duplicates():
    rec = ArrivalRecorder()
    for seq in [1, 2, 2, 4, 5, 5, 5]:
        rec.record(Event(seq, "t", {}, 0))
    assert rec.missing() == [3]
    assert rec.duplicates == 3
    assert rec.unique == 4 and rec.received == 7
    assert rec.lost() == 1
    assert rec.lost(sent=7) == 3  # 3, 6 and 7 never came
    assert [a.duplicate for a in rec.arrivals] == [False, False, True, False, False, True, True]
    assert len(rec.latencies_ms()) == 4  # first arrivals only


def test_recorder_ignores_events_before_the_client_joined():
    rec = ArrivalRecorder(first_seq=10)
    rec.record(Event(11, "t", {}, 0))
    assert rec.missing() == [10]
    assert rec.lost(sent=12) == 2


def test_recorder_is_thread_safe_and_notifies_listeners():
    rec = ArrivalRecorder()
    heard: list[int] = []
    lock = threading.Lock()

    def listener(arrival):
        with lock:
            heard.append(arrival.seq)

    rec.add_listener(listener)
    threads = [
        threading.Thread(
            target=lambda k=k: [rec.record(Event(k * 1000 + i, "t", {}, 0)) for i in range(1, 501)]
        )
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rec.received == 2000 and rec.duplicates == 0
    assert sorted(heard) == sorted(k * 1000 + i for k in range(4) for i in range(1, 501))
    rec.remove_listener(listener)
    rec.record(Event(1, "t", {}, 0))
    assert len(heard) == 2000


def test_wait_for_returns_false_when_an_event_never_comes():
    rec = ArrivalRecorder()
    rec.record(Event(2, "t", {}, 0))
    assert rec.wait_for(2, timeout=0.1) is False  # 1 is missing
    rec.record(Event(1, "t", {}, 0))
    assert rec.wait_for(2, timeout=0.1) is True


def test_log_keeps_events_numbered_elsewhere_in_order_once():
    # fan-out: the Redis counter numbers events, each process's EventLog keeps them
    log = EventLog(capacity=3, start_at=10)
    assert log.since(10) == ([], False)  # where this process joined: not the future
    assert log.add(Event(11, "t")) and log.add(Event(13, "t"))  # a jump is kept as is
    assert not log.add(Event(12, "t")) and not log.add(Event(13, "t"))  # late copies
    assert [e.seq for e in log.since(10)[0]] == [11, 13] and log.last_seq == 13
    for seq in (14, 15):
        log.add(Event(seq, "t"))
    assert [e.seq for e in log.since(12)[0]] == [13, 14, 15] and not log.since(12)[1]
    assert log.since(10)[1]  # 11 fell out: a resume from before it is told so
    with pytest.raises(ValueError):
        log.add(Event(16, "bad type"))
