"""Checkers for notebook 03's exercises (HTTP streaming and SSE), core and in depth."""

from __future__ import annotations

import threading
from collections.abc import Callable

import requests
import sseclient
import tornado.web

from lab.waiting import wait_until
from servers.server_thread import ServerThread

from . import Feedback


def _parse(text: str) -> list:
    """Events as an SSE client (sseclient-py) reads them, with the id carried
    over between events as the spec says (sseclient-py does not do that)."""
    events, last_id = [], None
    for message in sseclient.SSEClient([text.encode("utf-8")]).events():
        last_id = message.id if message.id is not None else last_id
        events.append((last_id, message.event, message.data))
    return events


def check_sse_encode(fn: Callable[[int, str, str], str]) -> Feedback:
    """Exercise 1: ``fn(seq, event_type, data)`` returns one SSE block (str)
    that a client reads back as exactly that event: id, type and data,
    multi-line data included."""
    fb = Feedback("Exercise 1: encode an event as SSE")
    cases = [
        (1, "price.tick", '{"symbol":"ACME","price":101.5}'),
        (2, "post.created", "first line\nsecond line"),
        (3, "post.created", "a\nb\nc"),
        (4, "message", "plain"),
    ]
    for seq, event_type, data in cases:
        try:
            text = fn(seq, event_type, data)
        except Exception as exc:  # feedback, not a traceback
            return fb.fail(f"calling it with ({seq}, {event_type!r}, {data!r}) raised {exc!r}")
        if not isinstance(text, str):
            return fb.fail(f"it should return a str, got {type(text).__name__}")
        if not text.endswith("\n\n"):
            return fb.fail(
                f"the block for seq {seq} does not end with a blank line: a client only "
                "dispatches an event when it reads an empty line, so this one never arrives"
            )
        if "\n\n" in text[:-2]:
            fb.fail(
                f"the block for seq {seq} has a blank line in the middle: that dispatches "
                "half an event"
            )
            continue
        got = _parse(text)
        if len(got) != 1:
            fb.fail(f"seq {seq}: a client read {len(got)} events from {text!r}, not 1")
            continue
        got_id, got_type, got_data = got[0]
        if got_id != str(seq):
            fb.fail(
                f"seq {seq}: the client read id {got_id!r}. Without `id: {seq}` it cannot "
                "send Last-Event-ID when it reconnects, and resume is impossible"
            )
        if got_type != event_type:
            fb.fail(f"seq {seq}: the client read the type {got_type!r}, not {event_type!r}")
        if got_data != data:
            hint = ""
            if "\n" in data and not all(
                f"data: {line}" in text or f"data:{line}" in text for line in data.split("\n")
            ):
                hint = (
                    ": a newline inside the data ends the line, so the next line is read as "
                    "a field of its own (and ignored). Send one `data:` line per line of data"
                )
            fb.fail(f"seq {seq}: the client read the data {got_data!r}, not {data!r}{hint}")
    if fb.passed:
        fb.note("every block reads back as the same id, type and data, multi-line data included")
    return fb


def check_reconnect_plan(fn: Callable) -> Feedback:
    """Exercise 2: ``fn(status, content_type, last_event_id, retry_ms)``
    returns ``None`` to stop for good, or ``(delay_s, headers)`` to reconnect.
    ``status`` is None when the connection failed or a stream ended."""
    fb = Feedback("Exercise 2: reconnect like EventSource")
    stop_cases = [
        ((204, None, "7", 1000), "204 No Content is the server saying: stop reconnecting"),
        ((500, "text/html", "7", 1000), "a non-200 status fails the connection for good"),
        ((404, "application/json", None, 1000), "a non-200 status fails the connection"),
        (
            (200, "application/json", "7", 1000),
            "a 200 that is not text/event-stream is not an SSE stream: stop",
        ),
    ]
    for args, why in stop_cases:
        try:
            got = fn(*args)
        except Exception as exc:
            return fb.fail(f"fn{args} raised {exc!r}")
        if got is not None:
            fb.fail(f"fn{args} should return None: {why}")
    go_cases = [
        ((None, None, "41", 1000), 1.0, "41"),
        ((200, "text/event-stream", "41", 2500), 2.5, "41"),
        ((200, "text/event-stream; charset=utf-8", "41", 300), 0.3, "41"),
        ((None, None, None, 1000), 1.0, None),
    ]
    go_cases.append(((None, None, "", 1000), 1.0, None))  # nothing received yet: empty id
    for args, delay, last_id in go_cases:
        try:
            got = fn(*args)
        except Exception as exc:
            return fb.fail(f"fn{args} raised {exc!r}")
        if got is None:
            reason = (
                "a dropped connection (status None) is exactly when to reconnect"
                if args[0] is None
                else "a 200 text/event-stream (parameters like charset allowed) is a good stream"
            )
            fb.fail(f"fn{args} returned None, but {reason}")
            continue
        try:
            delay_s, headers = got
            headers = {k.lower(): v for k, v in dict(headers).items()}
        except (TypeError, ValueError):
            return fb.fail(f"fn{args} should return (delay_s, headers), got {got!r}")
        if abs(delay_s - delay) > 1e-9:
            fb.fail(
                f"fn{args}: delay {delay_s!r} s, expected {delay} s (retry: is in milliseconds)"
            )
        if last_id is None and "last-event-id" in headers:
            fb.fail(
                f"fn{args}: with no id yet (None or empty), send no Last-Event-ID header: "
                "the spec adds it only when the last event ID is not empty"
            )
        if last_id is not None and headers.get("last-event-id") != last_id:
            fb.fail(
                f"fn{args}: headers should carry Last-Event-ID: {last_id}, so the server "
                "replays what was missed"
            )
        if headers.get("accept") != "text/event-stream":
            fb.fail(
                f"fn{args}: send Accept: text/event-stream (exactly): proxies such as "
                "jupyter-server-proxy only stream when they see it"
            )
    if fb.passed:
        fb.note("stops on 204 and other failures, resumes with Last-Event-ID after retry: ms")
    return fb


def _read_sse(server: ServerThread, headers: dict, publish: Callable[[], None], want: int) -> dict:
    """GET the handler; once it has subscribed, ``publish()`` (on a thread, so
    a handler that sends its headers only with the first event works too);
    read up to ``want`` events, or until nothing comes for 0.6 s."""
    out: dict = {"status": None, "type": "", "events": [], "error": None}
    subscribers = lambda: server.call(lambda: server.hub.subscriber_count)  # noqa: E731
    before = subscribers()

    def publish_once_subscribed() -> None:
        if wait_until(lambda: subscribers() > before, timeout=2):
            publish()

    publisher = threading.Thread(target=publish_once_subscribed, name="exercise-publish")
    publisher.start()
    try:
        with requests.get(
            f"{server.url}/sse", headers=headers, stream=True, timeout=(2, 0.6)
        ) as resp:
            out["status"], out["type"] = resp.status_code, resp.headers.get("Content-Type", "")
            if resp.status_code == 200:
                last_id = None
                for message in sseclient.SSEClient(resp.iter_content(chunk_size=None)).events():
                    last_id = message.id if message.id is not None else last_id
                    out["events"].append(last_id)
                    if len(out["events"]) >= want:
                        break
    except requests.RequestException as exc:
        out["error"] = type(exc).__name__
    publisher.join()
    return out


def check_resumable_sse(handler: type) -> Feedback:
    """Core exercise 1: ``handler`` (a RequestHandler taking ``hub``) sends
    ``id:`` on every event and replays what came after ``Last-Event-ID``."""
    fb = Feedback("Exercise 1: make the tiny handler resumable")
    app = lambda hub: tornado.web.Application([(r"/sse", handler, {"hub": hub})])  # noqa: E731
    server = ServerThread(app, name="exercise-sse").start()
    try:
        for n in range(5):
            server.publish("price.tick", {"n": n})  # events 1..5, before anyone connects

        def live() -> None:
            server.publish("price.tick", {"live": 1})
            server.publish("price.tick", {"live": 2})

        back = _read_sse(server, {"Last-Event-ID": "2"}, live, want=5)
        fresh = _read_sse(server, {}, live, want=2)
    finally:
        server.stop()
    for name, got in (("with Last-Event-ID: 2", back), ("without Last-Event-ID", fresh)):
        if got["status"] is None:
            return fb.fail(
                f"a request {name} got no answer ({got['error']}): nothing reached the "
                "client within 2 s. Did you flush()?"
            )
        if got["status"] != 200 or not got["type"].startswith("text/event-stream"):
            return fb.fail(
                f"a request {name} got {got['status']} {got['type']!r}, not 200 "
                "text/event-stream (read the server's traceback above)"
            )
    ids = back["events"]
    if ids and all(i is None for i in ids):
        return fb.fail("no event carries an `id:` line: the client has nothing to send back")
    if ids == ["6", "7"]:
        return fb.fail(
            "Last-Event-ID: 2 was ignored: events 3, 4 and 5 never came. Replay them from "
            "self.hub.log.since(2) before the live ones"
        )
    if len(set(ids)) < len(ids):
        fb.fail(f"some events came twice ({ids}): skip what you replayed already")
    elif ids != ["3", "4", "5", "6", "7"]:
        fb.fail(f"a client back with Last-Event-ID: 2 read ids {ids}, not 3, 4, 5, 6, 7")
    if fresh["events"] != ["8", "9"]:
        fb.fail(
            f"a new client (no Last-Event-ID) read ids {fresh['events']}, not the live 8, 9: "
            "a client that saw nothing yet starts live, it did not ask for the whole log"
        )
    if fb.passed:
        fb.note("replays 3, 4, 5 after Last-Event-ID: 2, then goes live, each event once")
    return fb
