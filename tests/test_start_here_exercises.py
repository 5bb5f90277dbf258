"""Notebook 00's checkers accept the reference answers and reject typical
wrong ones with a specific message; its lesson helpers serve the handler the
notebook builds and show what forgetting the cursor costs."""

from __future__ import annotations

import asyncio

import pytest
import tornado.web

from lab.exercises import load_solution
from lab.exercises.start_here import check_cursor_handler, check_short_poll_cost
from lab.lessons import start_here as lesson
from lab.waiting import wait_until
from lab.widgets import TriggerPanel
from servers import polling, runtime
from servers.common import app_with
from servers.runtime import ServerThread


class Crashes(tornado.web.RequestHandler):
    """The notebook's first handler: int() and log.since() raise on a bad cursor (500)."""

    def initialize(self, hub):
        self.hub = hub

    def get(self):
        events, _ = self.hub.log.since(int(self.get_argument("after", "0")))
        self.write({"events": [e.to_dict() for e in events]})


class IgnoresCursor(Crashes):
    def get(self):
        self.write({"events": [e.to_dict() for e in self.hub.log.since(0)[0]]})


class TakesNegative(Crashes):
    """Checks digits with int() only: "-1" slips through as "everything"."""

    def get(self):
        try:
            after = int(self.get_argument("after", "0"))
        except ValueError:
            raise tornado.web.HTTPError(400) from None
        if after > self.hub.log.last_seq:
            raise tornado.web.HTTPError(400)
        self.write({"events": [e.to_dict() for e in self.hub.log.since(max(after, 0))[0]]})


class TinyLongPoll(tornado.web.RequestHandler):
    """The notebook's long-poll handler, as it appears there."""

    def initialize(self, hub):
        self.hub = hub

    def cursor(self):
        return int(self.get_argument("after", "0"))

    async def get(self):
        after = self.cursor()
        events, _ = self.hub.log.since(after)
        if not events:
            news = asyncio.Event()
            sub = self.hub.subscribe_callback(lambda event: news.set())
            try:
                await asyncio.wait_for(news.wait(), float(self.get_argument("timeout", "20")))
            except asyncio.TimeoutError:
                pass
            finally:
                sub.close()
            events, _ = self.hub.log.since(after)
        self.write({"events": [e.to_dict() for e in events]})


class Forgetful(TinyLongPoll):
    def cursor(self):
        return self.hub.log.last_seq


@pytest.fixture
def no_servers_left():
    yield
    runtime.stop_all()


def test_cursor_checker_accepts_the_solution(no_servers_left):
    feedback = check_cursor_handler(load_solution("00_checked_poll")["CheckedPoll"])
    assert feedback, str(feedback)
    assert "exercise-00" not in runtime.running()  # the checker stops its server


def test_cursor_checker_accepts_a_long_poll_that_checks(no_servers_left):
    class Checked(TinyLongPoll):
        def cursor(self):
            raw = self.get_argument("after", "0")
            if not (raw.isascii() and raw.isdigit()) or int(raw) > self.hub.log.last_seq:
                raise tornado.web.HTTPError(400)
            return int(raw)

    assert check_cursor_handler(Checked)


@pytest.mark.parametrize(
    "handler, fragment",
    [
        (Crashes, "(the handler raised ValueError"),
        (TinyLongPoll, "expected 400: it is from the future"),
        (IgnoresCursor, "only the events after the client's cursor"),
        (TakesNegative, "?after=-1: status 200"),
    ],
)
def test_cursor_checker_rejects_wrong_handlers(no_servers_left, handler, fragment):
    feedback = check_cursor_handler(handler)
    assert not feedback and fragment in str(feedback), str(feedback)


def test_cursor_checker_reports_a_handler_that_never_answers(no_servers_left):
    class Hangs(Crashes):
        async def get(self):
            await asyncio.sleep(10)

    feedback = check_cursor_handler(Hangs)
    assert not feedback and "no answer within 3 s" in str(feedback)


def test_short_poll_cost_checker_both_ways():
    assert check_short_poll_cost(load_solution("00_short_poll_cost")["short_poll_cost"])
    whole = lambda i, r: {  # noqa: E731
        "requests_per_minute": 60 / i,
        "requests_per_event": 60 / i / r,
        "mean_latency_s": i,
    }
    assert "half an interval" in str(check_short_poll_cost(whole))


def test_forgetting_the_cursor_loses_what_came_while_away():
    with ServerThread(app_with(polling.routes)) as server:
        trigger = TriggerPanel(server.publish)
        lesson.mount(server, "/mine/wait", TinyLongPoll)
        lesson.mount(server, "/forgetful/wait", Forgetful)
        mine, mine_panel = lesson.long_poller(server, "/mine/wait", "mine", trigger)
        broken, broken_panel = lesson.long_poller(server, "/forgetful/wait", "broken", trigger)
        try:
            trigger.fire()
            for c in (mine, broken):
                assert c.recorder.wait_for(trigger.last_seq, timeout=5), c.recorder.name
            lesson.away_and_back(server, [mine, broken], events=3)
            trigger.fire()
            for c in (mine, broken):
                assert wait_until(lambda c=c: c.recorder.highest_seq == trigger.last_seq)
            assert mine.recorder.highest_seq == broken.recorder.highest_seq == 5
            assert mine_panel.counts()["lost"] == 0
            assert broken_panel.counts()["lost"] == 3
        finally:
            lesson.stop_together([mine, broken])


def test_mount_replaces_the_handler_at_a_path_and_survives_a_restart():
    import requests

    with ServerThread(app_with(polling.routes)) as server:
        server.publish("order.created")
        lesson.mount(server, "/mine", IgnoresCursor)
        assert len(requests.get(f"{server.url}/mine?after=1", timeout=5).json()["events"]) == 1
        lesson.mount(server, "/mine", Crashes)
        assert requests.get(f"{server.url}/mine?after=1", timeout=5).json()["events"] == []
        assert requests.get(f"{server.url}/events?after=0", timeout=5).status_code == 200
        server.stop()
        server.start()  # a restarted server builds a fresh app: the mount is in it too
        server.publish("order.created")
        assert len(requests.get(f"{server.url}/mine?after=1", timeout=5).json()["events"]) == 1


def test_measure_all_runs_every_client_on_one_schedule():
    with ServerThread(app_with(polling.routes, *_stream_routes())) as server:
        short, long, push = lesson.measure_all(server, [0.05, 0.5], n_events=4, mean_gap_s=0.05)
    assert [r.poll_interval_s for r in short] == [0.05, 0.5]
    assert all(r.events_delivered == 4 for r in (*short, long, push))
    assert push.requests == 1
    assert lesson.leftover_threads() == []


def _stream_routes():
    from servers import streaming

    return [streaming.routes]
