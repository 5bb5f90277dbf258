"""The streaming and polling servers against hostile input (issue 15, items
4, 5 and 13): odd numbers get a 400 with a reason (never a 500), no field
the SSE server writes can be split into a forged one, one event that cannot
be written as SSE does not end the streams, and stream tokens need the demo
password."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
import requests
from sse_spec_parser import parse

from lab.wire.http import WireView, raw_request
from servers import events, polling, sse, sse_format, streaming
from servers.runtime import ServerThread

APP = sse.app_with(polling.routes, streaming.routes)  # server.state: the SSEFeed


PASSWORD = "correct horse"


@pytest.fixture
def server():
    with ServerThread(APP, name="streaming-hardening") as srv:
        for i in range(5):
            srv.publish("tick", {"i": i})
        yield srv


# -- item 5: every number a client sends ------------------------------------------
# Each was a 200 or a 500 before: "+3" and "٣" (Arabic-Indic 3) were read as 3
# by int(), a valid cursor with 5 events in the log; float() reads "٣" and
# "1_0" too; "²" passed str.isdigit() and then crashed int() with a 500. The
# rest were already refused, and stay refused.
BAD_INTEGERS = ["%C2%B2", "%2B3", "%D9%A3", "-1", "1.0", "0x1", "9" * 5000, "1" * 19]
BAD_SECONDS = ["nan", "inf", "1e400", "9" * 400, "%D9%A3", "1_0", "%2B1", "-1", "0x1"]


def bad_requests():
    """(what, method, path, headers) for every number a client may send."""
    for path in ["/events", "/events/wait", "/stream/ndjson", "/stream/ndjson-close"]:
        for value in [*BAD_INTEGERS, "", "6"]:  # blank; from the future (last is 5)
            yield f"{path} after={value[:12]}", path + f"?after={value}", {}
    for value in BAD_INTEGERS:
        yield f"lastEventId={value[:12]}", f"/stream/sse?lastEventId={value}", {}
        header = unquote(value)  # the characters themselves, as a client could send them
        yield f"Last-Event-ID: {value[:12]}", "/stream/sse", {"Last-Event-ID": header}
    for value in [*BAD_INTEGERS, ""]:
        yield f"sse limit={value[:12]}", f"/stream/sse?limit={value}", {}
        yield f"ndjson limit={value[:12]}", f"/stream/ndjson?after=5&limit={value}", {}
    for value in [*BAD_SECONDS, ""]:
        yield f"heartbeat={value[:12]}", f"/stream/sse?heartbeat={value}", {}
        yield f"timeout={value[:12]}", f"/events/wait?after=5&timeout={value}", {}


def test_every_bad_number_is_a_400_with_a_reason_and_the_server_still_answers(server):
    wrong = []
    for what, path, headers in bad_requests():
        view = WireView(raw_request(server.url, path, headers, duration=2, until=b"}"))
        status = view.head.split(" ", 2)[1] if view.head else "no answer"
        body = view.body.decode(errors="replace")
        if status != "400" or '"error"' not in body:
            wrong.append(f"{what}: {status} {body[:80]!r}")
    assert wrong == [], "\n".join(wrong)
    good = requests.get(f"{server.url}/events?after=4", timeout=5)
    assert [e["seq"] for e in good.json()["events"]] == [5]
    with requests.get(f"{server.url}/stream/ndjson?after=3&limit=2", timeout=5) as resp:
        assert [json.loads(line)["seq"] for line in resp.iter_lines()] == [4, 5]
    view = WireView(raw_request(server.url, "/stream/sse?lastEventId=3&limit=2&heartbeat=0.5"))
    assert [e.last_event_id for e in parse(view.body).events] == ["4", "5"]


# -- item 4: nothing the SSE server writes can be split into a forged field -------
def test_a_comment_holding_a_bare_cr_cannot_start_a_field():
    text = sse_format.format_comment("note\rid: 999\rdata: forged\r")
    parsed = parse((text + sse_format.format_event("real", id=1)).encode())
    assert [(e.data, e.last_event_id) for e in parsed.events] == [("real", "1")]


@pytest.mark.parametrize("retry", ["1000", True, -5, 1.5])
def test_retry_must_be_a_whole_number_of_ms(retry):
    with pytest.raises(ValueError, match="retry"):
        sse_format.format_event("x", retry=retry)


def test_an_event_that_cannot_be_sent_as_sse_is_skipped_and_streams_go_on(server, monkeypatch):
    def read_live():
        return requests.get(f"{server.url}/stream/sse?lastEventId=5", stream=True, timeout=5)

    live = read_live()
    # Simulate a bug that lets a bad type through the check made at publish.
    monkeypatch.setattr(events, "check_event_type", lambda type: type)
    server.publish("forged\nid: 999\ndata: {}", {})
    monkeypatch.undo()
    server.publish("after.it", {"n": 1})
    body = b""
    for chunk in live.iter_content(None):  # read until the next event has arrived
        body += chunk
        if b"after.it" in body:
            break
    live.close()
    parsed = parse(body)
    assert [(e.type, e.last_event_id) for e in parsed.events] == [("after.it", "7")]
    assert "999" not in body.decode()
    # A client resuming from before it gets the events around it, not a 500.
    view = WireView(raw_request(server.url, "/stream/sse?lastEventId=5", duration=0.3))
    assert view.head.startswith("HTTP/1.1 200")
    assert [e.last_event_id for e in parse(view.body).events] == ["7"]
    assert server.state.unencodable >= 2


# -- item 13 and item 5: the token endpoint -------------------------------------
def token(server, **form):
    return requests.post(f"{server.url}/stream/token", data=form, timeout=5)


def test_no_password_set_means_no_tokens(server):
    resp = token(server, user="ada", password="anything")
    assert resp.status_code == 403 and "password" in resp.json()["error"]


def test_a_token_needs_the_demo_password_in_the_body(server):
    server.state.password = PASSWORD
    assert token(server, user="ada").status_code == 401
    wrong = token(server, user="ada", password="guess")
    assert wrong.status_code == 401 and "wrong password" in wrong.json()["error"]
    in_url = requests.post(
        f"{server.url}/stream/token", params={"user": "ada", "password": PASSWORD}, timeout=5
    )
    assert in_url.status_code == 401 and "never in the URL" in in_url.json()["error"]
    issued = token(server, user="ada", password=PASSWORD)
    assert issued.status_code == 200
    private = f"{server.url}/stream/sse/private?limit=1&lastEventId=4"
    with requests.get(private, params={"token": issued.json()["token"]}, timeout=5) as resp:
        assert resp.status_code == 200 and parse(resp.content).events[0].last_event_id == "5"


@pytest.mark.parametrize("user", ["a b", "a.b", "ada\r\nX: y", "", "é", "x" * 65, "a;b"])
def test_bad_user_names_get_a_400(server, user):
    server.state.password = PASSWORD
    resp = token(server, user=user, password=PASSWORD)
    assert resp.status_code == 400 and "user" in resp.json()["error"], resp.text
    assert token(server, user="ada", password=PASSWORD).status_code == 200


def test_user_in_the_url_is_checked_too(server):
    server.state.password = PASSWORD
    resp = requests.post(
        f"{server.url}/stream/token?user=a%20b", data={"password": PASSWORD}, timeout=5
    )
    assert resp.status_code == 400 and "user" in resp.json()["error"]  # was a 500


@pytest.mark.parametrize("forged", ["ada.1.%C3%A9", "ada.1.%C2%B2"])
def test_forged_stream_tokens_get_a_401_never_a_500(server, forged):
    url = f"{server.url}/stream/sse/private"
    resp = requests.get(f"{url}?token={forged}", timeout=5)
    assert resp.status_code == 401 and resp.json()["error"], resp.text
    # and the same as a cookie (a non-ASCII signature crashed hmac.compare_digest)
    resp = requests.get(url, cookies={"stream_session": unquote(forged)}, timeout=5)
    assert resp.status_code == 401 and resp.json()["error"], resp.text


def test_an_event_holding_a_lone_surrogate_still_reaches_sse_clients(server):
    # "\ud800" has no UTF-8 form: JSON carries it escaped; the stream goes on.
    server.publish("odd", {"text": "\ud800"})
    server.publish("next", {})
    view = WireView(
        raw_request(server.url, "/stream/sse?lastEventId=5&limit=2", until=b"0\r\n\r\n")
    )
    events = parse(view.body).events
    assert [e.type for e in events] == ["odd", "next"]
    assert json.loads(events[0].data)["payload"]["text"] == "\ud800"
