"""The widget kit: the programmatic twins drive the same path as a click, and
updates from client threads reach the widgets."""

from __future__ import annotations

import threading
import time

from lab.clients import LongPollingClient, NDJSONStreamClient, ShortPollingClient
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from lab.widgets import ArrivalPanel, Throttle, TriggerPanel
from servers import ServerThread
from servers.common import app_with
from servers.events import Event
from servers.polling import routes as polling_routes
from servers.streaming import routes as streaming_routes

APP = app_with(polling_routes, streaming_routes)


def test_fire_and_burst_buttons_publish_through_the_server():
    with ServerThread(APP) as server:
        trigger = TriggerPanel(server.publish, event_types=["a", "b"])
        trigger.event_type.value = "b"
        trigger.fire_button.click()
        trigger.burst_size.value = 4
        trigger.burst_button.click()
        events, _ = server.hub.log.since(0)
        assert [e.type for e in events] == ["b"] * 5
        assert trigger.sent == 5 and trigger.last_seq == 5
        assert "sent: <b>5</b>" in trigger.status.value


def test_rate_toggle_streams_until_switched_off():
    with ServerThread(APP) as server:
        trigger = TriggerPanel(server.publish)
        trigger.rate.value = 50
        trigger.stream_toggle.value = True
        assert wait_until(lambda: trigger.sent >= 5, timeout=5)
        trigger.stream_toggle.value = False
        sent = trigger.sent
        time.sleep(0.2)
        assert trigger.sent == sent
        assert not [t for t in threading.enumerate() if t.name == "trigger-rate"]
        trigger.close()


def test_a_click_on_a_stopped_server_shows_the_error_instead_of_raising():
    server = ServerThread(APP).start()
    trigger = TriggerPanel(server.publish)
    server.stop()
    trigger.fire_button.click()
    assert trigger.sent == 0
    assert "not sent" in trigger.status.value and "stopped" in trigger.status.value


def test_arrival_panel_updates_from_client_threads():
    with ServerThread(APP) as server:
        trigger = TriggerPanel(server.publish)
        clients = [
            ShortPollingClient(server.url, interval=0.05, recorder=ArrivalRecorder("short")),
            LongPollingClient(server.url, recorder=ArrivalRecorder("long")),
            NDJSONStreamClient(server.url, recorder=ArrivalRecorder("push")),
        ]
        panels = [ArrivalPanel.for_trigger(c.recorder, trigger) for c in clients]
        for c in clients:
            c.start()
        try:
            trigger.burst_size.value = 20
            trigger.burst_button.click()
            for c in clients:
                assert c.recorder.wait_for(20, timeout=5), c.name
            for p in panels:
                p.refresh()
                assert p.counts() == {
                    "sent": 20,
                    "received": 20,
                    "lost": 0,
                    "duplicated": 0,
                    "not yet": 0,
                }
                assert "<b>20</b>" in p.counters.value
                assert "<td>20</td>" in p.log.value  # newest row first
        finally:
            for c in clients:
                c.stop()


def test_panel_counts_gaps_as_lost_and_pending_as_not_yet():
    rec = ArrivalRecorder()
    sent = {"n": 6}
    panel = ArrivalPanel(rec, sent=lambda: sent["n"])
    for seq in (1, 2, 4, 4):
        rec.record(Event(seq, "t", {}, 0))
    assert panel.counts() == {"sent": 6, "received": 4, "lost": 1, "duplicated": 1, "not yet": 2}


def test_throttle_coalesces_a_burst_into_few_redraws():
    calls: list[float] = []
    throttle = Throttle(lambda: calls.append(time.monotonic()), interval=0.05)
    for _ in range(1000):
        throttle.request()
    time.sleep(0.2)
    assert 1 <= len(calls) <= 3  # one immediate, one trailing, not a thousand
    throttle.flush()
    assert len(calls) >= 2
