"""The first-message deadline exercise (notebook 02 in depth, Exercise 3): the
checker passes the reference handler and names what is wrong in typical
wrong ones."""

from __future__ import annotations

import json

import pytest
from tornado.ioloop import IOLoop
from tornado.websocket import WebSocketHandler

from lab.exercises import load_solution
from lab.exercises.websockets_in_depth import check_auth_deadline

AuthFirst = load_solution("02_auth_deadline")["AuthFirst"]


class Skeleton(WebSocketHandler):
    """The notebook's starting point: no timer, any first message lets you in."""

    DEADLINE = 0.3

    def open(self):
        self.user = None

    def on_message(self, message):
        if self.user is not None:
            self.write_message(message)
            return
        self.user = "guest"
        self.write_message({"type": "welcome"})


class NeverCancels(AuthFirst):
    DEADLINE = 0.3

    def stop_timer(self):
        pass  # the timer fires even after the token checked out


class WelcomesEarly(AuthFirst):
    DEADLINE = 0.3

    def open(self):
        super().open()
        self.write_message({"type": "hello"})  # before the token


class ClosesNormally(AuthFirst):
    DEADLINE = 0.3

    def too_late(self):
        self.timer = None
        self.close(1000, "bye")


class TrustsAnyToken(AuthFirst):
    DEADLINE = 0.3

    def on_message(self, message):
        if self.user is None and json.loads(message).get("type") == "auth":
            self.stop_timer()
            self.user = "guest"
            self.write_message({"type": "welcome"})
            return
        super().on_message(message)


class Crashes(AuthFirst):
    DEADLINE = 0.3

    def on_message(self, message):
        json.loads(message)  # "hello" raises: Tornado drops the connection, no close frame
        super().on_message(message)


class SleepsInOpen(AuthFirst):
    DEADLINE = 0.3

    async def open(self):
        self.user = None
        self.timer = None
        await __import__("asyncio").sleep(self.DEADLINE)  # on_message waits for open()
        self.close(1008, "too late")


def test_the_reference_passes():
    feedback = check_auth_deadline(type("Fast", (AuthFirst,), {"DEADLINE": 0.3}))
    assert feedback, str(feedback)


@pytest.mark.parametrize(
    "handler, hint",
    [
        (Skeleton, "never closed"),
        (NeverCancels, "cancel the timer"),
        (WelcomesEarly, "send nothing yet"),
        (ClosesNormally, "1008"),
        (TrustsAnyToken, "a wrong token"),
        (Crashes, "no close frame"),
        (SleepsInOpen, "not at the deadline"),
        (object, "subclass of tornado.websocket.WebSocketHandler"),
        (type("NoDeadline", (WebSocketHandler,), {}), "DEADLINE"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_typical_mistakes_get_specific_feedback(handler, hint):
    feedback = check_auth_deadline(handler)
    assert not feedback
    assert hint in str(feedback), str(feedback)


def test_the_checker_leaves_no_server_running():
    from servers import runtime

    check_auth_deadline(type("Fast", (AuthFirst,), {"DEADLINE": 0.3}))
    assert "ws-auth-check" not in runtime.running()
    assert IOLoop  # (the reference's timer API, imported by the solution)
