"""servers/sse_tokens.py: a fake model's answer over SSE, and the cancel.

The browser's side (and what jupyter-server-proxy does with its close) is in
tests/e2e/test_browser_native.py.
"""

from __future__ import annotations

import json

import pytest
import requests
import sseclient

from lab.waiting import wait_until
from servers import sse_tokens
from servers.runtime import ServerThread


@pytest.fixture(scope="module")
def server():
    stats = sse_tokens.TokenStats(delay_s=0.005)
    with ServerThread(lambda hub: sse_tokens.make_app(hub, stats), name="tokens-test") as srv:
        yield srv


def _events(server, **kw):
    headers = kw.pop("headers", {})
    resp = requests.get(f"{server.url}/answer", params=kw, headers=headers, stream=True, timeout=5)
    return resp, sseclient.SSEClient(resp).events()


def test_tokens_rebuild_the_text() -> None:
    assert "".join(sse_tokens.tokenize(sse_tokens.ANSWER)) == sse_tokens.ANSWER
    assert sse_tokens.TokenStats().total == len(sse_tokens.ANSWER.split())


def test_a_whole_answer_is_every_token_in_order_then_done(server) -> None:
    resp, events = _events(server)
    with resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        got = list(events)
    tokens = [json.loads(e.data) for e in got if e.event == "token"]
    assert [t["i"] for t in tokens] == list(range(server.state.total))
    assert [e.id for e in got[:2]] == ["0", "1"]
    assert "".join(t["text"] for t in tokens) == sse_tokens.ANSWER
    assert got[-1].event == "done" and json.loads(got[-1].data)["tokens"] == server.state.total
    run = server.state.runs[-1]
    assert run["finished"] and not run["cancelled"] and run["generated"] == run["total"]


def test_closing_the_connection_stops_the_generation(server) -> None:
    resp, events = _events(server, delay="0.05")
    with resp:
        for n, _event in enumerate(events, 1):
            if n == 3:
                break
    run = server.state.runs[-1]
    assert wait_until(lambda: run["cancelled"], timeout=5)
    stopped = run["generated"]
    wait_until(lambda: run["generated"] != stopped, timeout=0.5)  # ten tokens' time
    assert run["generated"] == stopped < run["total"] and not run["finished"]
    assert run["how"] == "connection closed"


def test_a_cancel_request_stops_an_answer_whoever_reads_it(server) -> None:
    resp, events = _events(server, delay="0.05")
    with resp:
        first = json.loads(next(iter(events)).data)
        run = server.state.runs[first["answer"] - 1]
        url = f"{server.url}/answer/{first['answer']}/cancel"
        assert requests.post(url, timeout=5).status_code == 204
        rest = list(events)  # the server ends the response: the loop stopped
    assert run["cancelled"] and run["how"] == "cancel request" and not run["finished"]
    assert run["generated"] <= 1 + len(rest) < run["total"]
    assert requests.post(url, timeout=5).status_code == 204  # again: nothing more to stop
    assert requests.post(f"{server.url}/answer/999/cancel", timeout=5).status_code == 404


def test_last_event_id_continues_after_that_token(server) -> None:
    resp, events = _events(server, headers={"Last-Event-ID": "60"})
    with resp:
        got = [json.loads(e.data)["i"] for e in events if e.event == "token"]
    assert got == list(range(61, server.state.total))


@pytest.mark.parametrize("params", [{"delay": "soon"}, {"delay": "9"}, {"after": "-1"}])
def test_bad_input_is_a_400_and_the_server_keeps_serving(server, params) -> None:
    bad = requests.get(f"{server.url}/answer", params=params, timeout=5)
    assert bad.status_code == 400 and bad.json()
    resp, events = _events(server)
    with resp:
        assert list(events)[-1].event == "done"
