"""lab.turn: the cell after a "your turn" step fires only what is missing."""

from __future__ import annotations

from lab.recorder import ArrivalRecorder
from lab.turn import act_unless_done, top_up
from lab.widgets import TriggerPanel
from servers.events import EventLog


def make():
    log = EventLog()
    recorder = ArrivalRecorder("r")
    trigger = TriggerPanel(lambda t, p: log.append(t, p))
    trigger.on_fire(recorder.record)
    return trigger, recorder


def test_nobody_clicked_the_cell_fires_all():
    trigger, recorder = make()
    said = top_up(trigger, 3, recorders=[recorder])
    assert trigger.sent == 3 and recorder.received == 3
    assert said == "Nobody clicked, so this cell fired 3 events for you."


def test_learner_clicked_some_the_cell_fires_the_rest():
    trigger, recorder = make()
    trigger.fire_button.click()  # the learner's click
    said = top_up(trigger, 3, recorders=[recorder])
    assert trigger.sent == 3 and recorder.received == 3
    assert said == "You fired 1 event; this cell fired the other 2."


def test_learner_clicked_enough_the_cell_fires_none():
    trigger, recorder = make()
    for _ in range(5):
        trigger.fire_button.click()
    assert top_up(trigger, 3, recorders=[recorder]) == "You fired 5 events; this cell fired none."
    assert trigger.sent == 5


def test_since_counts_only_the_clicks_after_a_mark():
    trigger, _ = make()
    trigger.fire()
    mark = trigger.sent
    top_up(trigger, 2, since=mark)
    assert trigger.sent == 3


def test_act_unless_done():
    acted = []
    assert act_unless_done(lambda: True, lambda: acted.append(1), "x") == "You did it: x."
    assert acted == []
    assert "this cell did" in act_unless_done(lambda: False, lambda: acted.append(1), "x")
    assert acted == [1]
