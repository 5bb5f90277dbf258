"""Notebook 03's checkers accept the reference answers and explain wrong ones."""

from __future__ import annotations

import tornado.iostream
import tornado.web

from lab.clients.sse import plan_reconnect
from lab.exercises import load_solution
from lab.exercises.http_streaming import (
    check_reconnect_plan,
    check_resumable_sse,
    check_sse_encode,
)


def test_sse_encode_checker_accepts_the_solution():
    assert check_sse_encode(load_solution("03_sse_encode")["sse_encode"])


def test_sse_encode_checker_explains_common_mistakes():
    one_data_line = lambda s, t, d: f"id: {s}\nevent: {t}\ndata: {d}\n\n"  # noqa: E731
    fb = check_sse_encode(one_data_line)
    assert not fb and "one `data:` line per line" in str(fb)

    no_blank_line = lambda s, t, d: f"id: {s}\nevent: {t}\ndata: {d}\n"  # noqa: E731
    fb = check_sse_encode(no_blank_line)
    assert not fb and "blank line" in str(fb)

    no_id = lambda s, t, d: "event: {}\n{}\n\n".format(  # noqa: E731
        t, "\n".join(f"data: {x}" for x in d.split("\n"))
    )
    fb = check_sse_encode(no_id)
    assert not fb and "Last-Event-ID" in str(fb)

    def raises(s, t, d):
        raise RuntimeError("boom")

    assert "raised" in str(check_sse_encode(raises))
    assert not check_sse_encode(lambda s, t, d: b"bytes")


def test_reconnect_checker_accepts_the_solution_and_the_library_rule():
    assert check_reconnect_plan(load_solution("03_reconnect_plan")["reconnect_plan"])

    def from_library(status, content_type, last_event_id, retry_ms):
        plan = plan_reconnect(status, content_type, last_event_id, retry_ms)
        return None if plan.stop else (plan.delay_s, plan.headers)

    assert check_reconnect_plan(from_library)


def test_reconnect_checker_explains_common_mistakes():
    def always(st, ct, last, ms):
        return ms / 1000, {"Accept": "text/event-stream", "Last-Event-ID": last}

    fb = check_reconnect_plan(always)
    assert not fb and "204" in str(fb)

    def milliseconds(status, ct, last, ms):
        if status not in (None, 200) or (status and "event-stream" not in ct):
            return None
        headers = {"Accept": "text/event-stream"}
        if last:
            headers["Last-Event-ID"] = last
        return ms, headers

    fb = check_reconnect_plan(milliseconds)
    assert not fb and "milliseconds" in str(fb)

    def no_resume(status, ct, last, ms):
        if status not in (None, 200) or (status and "event-stream" not in ct):
            return None
        return ms / 1000, {"Accept": "text/event-stream"}

    fb = check_reconnect_plan(no_resume)
    assert not fb and "replays what was missed" in str(fb)


def test_reconnect_checker_rejects_an_empty_last_event_id():
    def empty_header(status, ct, last, ms):
        if status not in (None, 200) or (status and "event-stream" not in ct):
            return None
        headers = {"Accept": "text/event-stream"}
        if last is not None:  # sends "Last-Event-ID: " when nothing was received
            headers["Last-Event-ID"] = last
        return ms / 1000, headers

    fb = check_reconnect_plan(empty_header)
    assert not fb and "not empty" in str(fb)


class TinySSE(tornado.web.RequestHandler):
    """The core notebook's handler: live events with ids, no resume."""

    def initialize(self, hub):
        self.hub = hub

    async def get(self):
        self.set_header("Content-Type", "text/event-stream")
        sub = self.hub.subscribe()
        try:
            while (event := await sub.get()) is not None:
                self.write(self.block(event))
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            sub.close()

    def block(self, event):
        return f"id: {event.seq}\nevent: {event.type}\ndata: {event.to_json()}\n\n"


class NoIds(TinySSE):
    def block(self, event):
        return f"event: {event.type}\ndata: {event.to_json()}\n\n"


class ReplaysTwice(tornado.web.RequestHandler):
    """Replays after Last-Event-ID but forgets to skip what the queue holds too."""

    def initialize(self, hub):
        self.hub = hub

    async def get(self):
        self.set_header("Content-Type", "text/event-stream")
        sub = self.hub.subscribe()
        last = int(self.request.headers.get("Last-Event-ID") or self.hub.log.last_seq)
        for event in self.hub.log.since(last)[0]:
            self.write(f"id: {event.seq}\ndata: {event.to_json()}\n\n")
        await self.flush()
        try:
            while (event := await sub.get()) is not None:
                self.write(f"id: {event.seq}\ndata: {event.to_json()}\n\n")
                self.write(f"id: {event.seq}\ndata: {event.to_json()}\n\n")  # twice
                await self.flush()
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            sub.close()


def test_resumable_checker_accepts_the_solution():
    fb = check_resumable_sse(load_solution("03_resumable_sse")["ResumableSSE"])
    assert fb, str(fb)


def test_resumable_checker_rejects_handlers_that_do_not_resume():
    fb = check_resumable_sse(TinySSE)
    assert not fb and "was ignored" in str(fb)
    fb = check_resumable_sse(NoIds)
    assert not fb and "`id:`" in str(fb)
    fb = check_resumable_sse(ReplaysTwice)
    assert not fb and "twice" in str(fb)
