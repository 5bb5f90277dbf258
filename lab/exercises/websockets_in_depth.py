"""Checker for notebook 02 in depth, Exercise 3: the first-message deadline.

The learner writes ``AuthFirst``, a ``WebSocketHandler`` whose first message
must be ``{"type": "auth", "token": "demo"}`` within ``DEADLINE`` seconds.
The checker serves it and tries real clients: one that never sends (while a
good one is served beside it), a wrong token, a ``say`` first, a message
that is not JSON, and a good client that stays past the deadline.
"""

from __future__ import annotations

import json
import select
import threading
import time
from typing import Any

import websocket  # websocket-client
from tornado.web import Application
from tornado.websocket import WebSocketHandler

from lab.wire.websocket import parse_close
from servers import runtime
from servers.websocket_strict import quiet_log

from . import Feedback

DROPPED = (websocket.WebSocketConnectionClosedException, ConnectionError)
TIMER_HINT = "start a timer in open(): IOLoop.current().call_later(self.DEADLINE, ...)"


def _first_frame(ws: websocket.WebSocket) -> tuple[str, Any, float]:
    """("close", (code, reason)) / ("text", data) / ("dropped" | "silent", None), and seconds."""
    t0 = time.monotonic()
    try:
        opcode, data = ws.recv_data(control_frame=True)
    except websocket.WebSocketTimeoutException:
        return "silent", None, time.monotonic() - t0
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return "dropped", None, time.monotonic() - t0
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        return "close", parse_close(data), time.monotonic() - t0
    return "text", data.decode(errors="replace")[:80], time.monotonic() - t0


def _refused_at_once(url: str, send: str, what: str, deadline: float, fb: Feedback) -> None:
    ws = websocket.create_connection(url, suppress_origin=True, timeout=deadline + 1)
    try:
        ws.send(send)
        kind, got, seconds = _first_frame(ws)
    except DROPPED:  # closed before the send: e.g. a welcome, then a close
        kind, got, seconds = "dropped", None, 0.0
    ws.close()
    if kind == "text":
        fb.fail(f"{what}: the server answered {got!r}; it must close with 1008 instead")
    elif kind == "dropped":
        fb.fail(f"{what}: the connection dropped with no close frame (did on_message raise?)")
    elif kind == "silent" or got[0] != 1008:
        fb.fail(f"{what}: expected a close with 1008, got {got or 'nothing'}")
    elif seconds > deadline / 2:
        fb.fail(f"{what}: closed after {seconds:.2f} s; refuse at once, not at the deadline")


def check_auth_deadline(handler: type) -> Feedback:
    """Exercise 3: ``handler`` closes 1008 at the deadline, at once on a bad
    first message, sends nothing before auth and keeps an authenticated client."""
    fb = Feedback("Exercise 3: authenticate in the first message, with a deadline")
    if not (isinstance(handler, type) and issubclass(handler, WebSocketHandler)):
        return fb.fail("pass the class itself, a subclass of tornado.websocket.WebSocketHandler")
    deadline = getattr(handler, "DEADLINE", None)
    if not isinstance(deadline, (int, float)) or not 0.1 <= deadline <= 2:
        return fb.fail("give the class a DEADLINE between 0.1 and 2 seconds, e.g. DEADLINE = 0.5")
    server = runtime.start(
        "ws-auth-check", lambda hub: Application([(r"/ws", handler)], log_function=quiet_log)
    )
    url = f"{server.ws_url}/ws"
    try:
        _check_deadline_and_others(url, deadline, fb)
        wrong = json.dumps({"type": "auth", "token": "guess"})
        _refused_at_once(url, wrong, "a wrong token", deadline, fb)
        _refused_at_once(
            url, json.dumps({"type": "say", "text": "hi"}), "a say first", deadline, fb
        )
        _refused_at_once(url, "hello", "a first message that is not JSON", deadline, fb)
    finally:
        server.stop()
    if fb.passed:
        fb.note(f"silent client closed 1008 after {deadline:g} s, bad first messages at once")
        fb.note("a good client was served meanwhile and stayed past the deadline")
    return fb


def _check_deadline_and_others(url: str, deadline: float, fb: Feedback) -> None:
    silent: dict[str, Any] = {}

    def sit_silent() -> None:
        t0 = time.monotonic()
        ws = websocket.create_connection(url, suppress_origin=True, timeout=deadline + 1)
        silent["kind"], silent["got"], _ = _first_frame(ws)
        silent["seconds"], silent["at"] = time.monotonic() - t0, time.monotonic()
        ws.close()

    waiter = threading.Thread(target=sit_silent, name="auth-check-silent", daemon=True)
    waiter.start()
    good = websocket.create_connection(url, suppress_origin=True, timeout=deadline + 1)
    try:
        served_at = _serve_good_client(good, deadline, fb)
    except DROPPED:
        served_at = None
        fb.fail("the good client's connection dropped with no close frame (did a handler raise?)")
    finally:
        good.close()
        waiter.join(deadline + 2)
    kind, got, seconds = silent.get("kind"), silent.get("got"), silent.get("seconds", 0)
    if kind == "text":
        fb.fail(f"the silent client received {got!r} before authenticating: send nothing yet")
    elif kind == "silent":
        fb.fail(f"a client that sends nothing was never closed: {TIMER_HINT}")
    elif kind == "dropped":
        fb.fail("the silent client was dropped with no close frame: close(1008, reason)")
    elif got[0] != 1008:
        fb.fail(f"the silent client was closed with {got[0]}; policy violation is 1008")
    elif seconds < deadline * 0.9:
        fb.fail(f"the silent client was closed after {seconds:.2f} s, before the deadline")
    elif served_at is not None and served_at > silent["at"]:
        fb.fail("the good client was only served after the silent one was closed: never block")


def _serve_good_client(good: websocket.WebSocket, deadline: float, fb: Feedback) -> float | None:
    """Authenticate, be echoed, wait past the deadline, be echoed again: when first served."""
    good.send(json.dumps({"type": "auth", "token": "demo"}))
    kind, got, _ = _first_frame(good)
    if kind != "text" or not got.startswith("{") or json.loads(got).get("type") != "welcome":
        fb.fail(f'the right token should get {{"type": "welcome"}} first, got {got or kind}')
        return None
    good.send("echo me")
    kind, got, _ = _first_frame(good)
    served_at = time.monotonic()
    if (kind, got) != ("text", "echo me"):
        fb.fail(f"after the welcome, echo each message back; got {got or kind}")
        return None
    time.sleep(deadline + 0.3)
    if select.select([good.sock], [], [], 0)[0]:  # something came unasked: a close?
        kind, got, _ = _first_frame(good)
    else:
        good.send("still here")
        kind, got, _ = _first_frame(good)
    if kind == "close":
        fb.fail(
            f"a client that authenticated was closed {got} at the deadline: cancel the timer "
            "once the token checks out (IOLoop.current().remove_timeout)"
        )
    elif (kind, got) != ("text", "still here"):
        fb.fail(f"after the deadline an authenticated client is still echoed; got {got or kind}")
    return served_at
