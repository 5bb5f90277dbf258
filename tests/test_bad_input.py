"""Bad input never yields a 500 or a dropped connection (issue 15, "Done when").

A table of malformed numbers, headers and JSON thrown at every endpoint of
every server in ``servers/``. Each case must be refused with a 4xx and a JSON
``{"error": "<reason>"}`` (a WebSocket: a ``room.error`` message or a close
frame with a code), and the server must answer a good request right after.
A few inputs may also be read as valid (a blank cursor is "not given", any
user name the token endpoint can sign): those cases accept a 2xx, never a 5xx.

Every server runs once for the module (in-process ``ServerThread``s); each
case then costs two or three loopback requests.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
import requests
import websocket

from servers import ServerThread, fanout, polling, sse, streaming
from servers import websocket as room
from servers.webhooks import Receiver, provider_app, signing

# -- the bad values -------------------------------------------------------------
# Numbers a client sends back (cursors, ids, timestamps): the server only ever
# hands out 1 to 18 ASCII digits, so everything here is a client bug.
BAD_NUMBERS: dict[str, str] = {
    "superscript-2": "²",  # str.isdigit() says yes, int() says no
    "plus-5": "+5",  # int() reads it as 5
    "arabic-indic-3": "٣",  # int() reads it as 3
    "fullwidth-5": "５",
    "5000-digits": "1" * 5000,  # past Python's int-from-string limit
    "400-digits": "9" * 400,  # float() overflows
    "minus-1": "-1",
    "inner-space": "1 2",
    "decimal": "1.5",
    "exponent": "1e3",
    "hex": "0x10",
    "word": "nan",
}
# "Not given": Tornado strips query values and header values, so a space is
# blank too. A blank cursor may be read as the default (2xx) or refused (4xx).
BLANKS: dict[str, str] = {"blank": "", "space": " "}

# Numbers read as seconds (timeouts, heartbeats): floats, but finite and in range.
BAD_SECONDS: dict[str, str] = {
    "nan": "nan",
    "inf": "inf",
    "1e400": "1e400",
    "minus-1": "-1",
    "superscript-2": "²",
    "arabic-indic-3": "٣",
    "word": "soon",
}

DEEP_ARRAY = "[" * 2000 + "]" * 2000  # json.loads: RecursionError, not ValueError
DEEP_OBJECT = '{"a":' * 2000 + "1" + "}" * 2000

# JSON bodies that are not what an endpoint expects, for every POST taking JSON.
NOT_JSON: dict[str, bytes] = {
    "not-json": b"this is not json",
    "truncated": b'{"type": "x"',
    "invalid-utf8": b'{"type": "\xff\xfe"}',
    "array": b"[]",
    "string": b'"text"',
    "deep-array": DEEP_ARRAY.encode(),
    "deep-object": DEEP_OBJECT.encode(),
}


def dumps(doc: object) -> bytes:
    return json.dumps(doc).encode()


# -- the cases ---------------------------------------------------------------------
@dataclass(frozen=True)
class Http:
    """One HTTP request; ``headers`` may be a function (signed at send time)."""

    server: str
    method: str
    path: str
    headers: dict | Callable[[bytes], dict] = field(default_factory=dict)
    body: bytes | None = None
    allow_2xx: bool = False


@dataclass(frozen=True)
class WsOpen:
    """A WebSocket URL with a bad query: refused before the upgrade (4xx), or
    opened and answered with ``room.error``."""

    server: str
    path: str


@dataclass(frozen=True)
class WsSend:
    """A bad message on an open room connection: ``room.error`` (and the
    connection still works) or a close frame with a code."""

    message: str | bytes


def case_id(*parts: str) -> str:
    return "-".join(p for p in parts if p)


ROOM_MAX_MESSAGE = room.DEFAULTS["max_message_size"]


def fits(case: WsSend) -> bool:
    raw = case.message.encode() if isinstance(case.message, str) else case.message
    return len(raw) < ROOM_MAX_MESSAGE


def number_cases() -> list:
    """Every number a client sends, in every place it can send one."""
    cases = []

    def each(prefix: str, make: Callable[[str], object], blanks: tuple = ("blank", "space")):
        for name, value in BAD_NUMBERS.items():
            cases.append(pytest.param(make(value), id=case_id(prefix, name)))
        for name in blanks:
            blank = make(BLANKS[name])
            if isinstance(blank, Http):
                blank = Http(**{**blank.__dict__, "allow_2xx": True})
            cases.append(pytest.param(blank, id=case_id(prefix, name)))

    def q(value: str) -> str:
        return quote(value, safe="")

    def header(value: str) -> bytes:
        # HTTP headers are bytes: send UTF-8 as a client would; Tornado reads latin-1.
        return value.encode("utf-8")

    each("polling-after", lambda v: Http("polling", "GET", f"/events?after={q(v)}"))
    each(
        "longpoll-after",
        lambda v: Http("polling", "GET", f"/events/wait?after={q(v)}&timeout=0"),
    )
    each("ndjson-after", lambda v: Http("streaming", "GET", f"/stream/ndjson?after={q(v)}"))
    each(
        "ndjson-limit",
        lambda v: Http("streaming", "GET", f"/stream/ndjson?after=0&limit={q(v)}"),
    )
    each(
        "ndjson-close-after",
        lambda v: Http("streaming", "GET", f"/stream/ndjson-close?after={q(v)}&limit=1"),
    )
    each(
        "sse-last-event-id",
        lambda v: Http("sse", "GET", "/stream/sse", headers={"Last-Event-ID": header(v)}),
        blanks=("blank",),  # requests refuses a header value starting with a space
    )
    each("sse-lastEventId", lambda v: Http("sse", "GET", f"/stream/sse?lastEventId={q(v)}"))
    each("sse-limit", lambda v: Http("sse", "GET", f"/stream/sse?limit={q(v)}"))
    each(
        "fanout-sse-last-event-id",
        lambda v: Http("fanout", "GET", "/sse", headers={"Last-Event-ID": header(v)}),
        blanks=("blank",),
    )
    each("fanout-sse-after", lambda v: Http("fanout", "GET", f"/sse?after={q(v)}"))
    each("fanout-ws-after", lambda v: WsOpen("fanout", f"/ws?after={q(v)}"), ())
    each("room-ws-after", lambda v: WsOpen("room", f"/ws/room?token=demo&after={q(v)}"), ())
    each(
        "room-msg-resume-after-string",
        lambda v: WsSend(json.dumps({"type": "resume", "after": v})),
        blanks=(),
    )
    # A room frame over max_message_size (4096 bytes) is closed with 1009 by
    # Tornado, which then drops TCP at once (tests/test_websocket.py covers
    # it): keep the room's message cases under that size so they test parsing.
    cases = [c for c in cases if not isinstance(c.values[0], WsSend) or fits(c.values[0])]
    each("deliveries-after", lambda v: Http("provider", "GET", f"/deliveries?after={q(v)}"))
    each(
        "webhook-timestamp",
        lambda v: Http(
            "receiver",
            "POST",
            "/webhook",
            headers={
                "webhook-id": "msg_bad_ts",
                "webhook-timestamp": header(v),
                "webhook-signature": "v1,AAAA",
            },
            body=b"{}",
        ),
        blanks=(),  # a blank header is a missing one: covered in webhook_cases
    )
    for name, value in BAD_SECONDS.items():
        cases += [
            pytest.param(
                Http("polling", "GET", f"/events/wait?after=0&timeout={q(value)}"),
                id=case_id("longpoll-timeout", name),
            ),
            pytest.param(
                Http("sse", "GET", f"/stream/sse?heartbeat={q(value)}"),
                id=case_id("sse-heartbeat", name),
            ),
        ]
    return cases


def room_message_cases() -> list:
    """Messages on the room's WebSocket: JSON values where a number or text goes."""
    afters = {
        "infinity": "Infinity",  # Python's json reads it: float("inf")
        "nan": "NaN",
        "0.9": "0.9",  # not silently 0
        "true": "true",  # not silently 1
        "minus-1": "-1",
        "1e400": "1e400",
        "31-digits": "1" + "0" * 30,
        "null": "null",
        "array": "[]",
        "object": "{}",
    }
    cases = [
        pytest.param(WsSend(f'{{"type":"resume","after":{v}}}'), id=f"room-msg-resume-after-{k}")
        for k, v in afters.items()
    ]
    texts = {
        "object": {},
        "array": ["hi"],
        "number": 5,
        "null": None,
        "empty": "",
        "blank": "   ",
        "too-long": "x" * (room.DEFAULTS["max_text"] + 1),
    }
    cases += [
        pytest.param(WsSend(json.dumps({"type": "say", "text": v})), id=f"room-msg-say-text-{k}")
        for k, v in texts.items()
    ]
    others = {
        "not-json": "hello",
        "deep-array": DEEP_ARRAY,  # 4,000 bytes: DEEP_OBJECT would be over the frame limit
        "deep-text": '{"type":"say","text":' + DEEP_ARRAY + "}",
        "type-object": '{"type":{}}',
        "no-type": '{"text":"hi"}',
        "unknown-type": '{"type":"shout"}',
        "binary": b"\x00\x01",
    }
    cases += [pytest.param(WsSend(v), id=f"room-msg-{k}") for k, v in others.items()]
    assert all(fits(c.values[0]) for c in cases)
    return cases


def say_cases() -> list:
    """``POST /room/say``: the room's checks over HTTP."""
    auth = {"Authorization": "Bearer demo"}
    bodies = {
        **NOT_JSON,
        "no-text": dumps({}),
        "text-object": dumps({"text": {}}),
        "text-array": dumps({"text": ["hi"]}),
        "text-number": dumps({"text": 5}),
        "text-empty": dumps({"text": ""}),
        "text-too-long": dumps({"text": "x" * 10_000}),
        "text-deep": ('{"text":' + DEEP_ARRAY + "}").encode(),
    }
    cases = [
        pytest.param(Http("room", "POST", "/room/say", auth, body), id=f"room-say-http-{name}")
        for name, body in bodies.items()
    ]
    tokens = {"missing": {}, "unknown": {"Authorization": "Bearer nope"}}
    tokens["non-ascii"] = {"Authorization": "Bearer ٣".encode()}
    cases += [
        pytest.param(
            Http("room", "POST", "/room/say", headers, dumps({"text": "hi"})),
            id=f"room-say-http-token-{name}",
        )
        for name, headers in tokens.items()
    ]
    return cases


def fanout_cases() -> list:
    bodies = {
        **NOT_JSON,
        "type-object": dumps({"type": {}}),
        "type-empty": dumps({"type": ""}),
        "type-newline": dumps({"type": "x\nid: 999999\ndata: forged"}),
        "type-too-long": dumps({"type": "a" * 1000}),
        "payload-array": dumps({"type": "ok", "payload": [1]}),
        "payload-string": dumps({"type": "ok", "payload": "x"}),
    }
    cases = [
        pytest.param(Http("fanout", "POST", "/publish", body=body), id=f"fanout-publish-{name}")
        for name, body in bodies.items()
    ]
    cases += [
        pytest.param(Http("fanout", "POST", f"/mode?mode={quote(m)}"), id=f"fanout-mode-{name}")
        for name, m in {"blank": "", "unknown": "fast", "arabic-indic-3": "٣"}.items()
    ]
    return cases


def sse_auth_cases() -> list:
    tokens = {
        "non-ascii-signature": "a.1.é",  # hmac.compare_digest refuses non-ASCII str
        "superscript-expiry": "a.².x",
        "two-parts": "a.b",
        "dots": "...",
        "long": "a." + "1" * 5000 + ".x",
    }
    cases = [
        pytest.param(
            Http("sse", "GET", f"/stream/sse/private?token={quote(t)}"), id=f"sse-token-{name}"
        )
        for name, t in tokens.items()
    ]
    # Names the token endpoint may sign (2xx) or refuse (4xx), never a 500.
    users = {
        "space": "a b",
        "dot": "a.b",
        "semicolon": "a;b",
        "comma": "a,b",
        "quote": 'a"b',
        "backslash": "a\\b",
        "non-ascii": "é",
        "control": "a\x01b",
        "blank": "",
        "5000-chars": "u" * 5000,
    }
    cases += [
        pytest.param(
            Http("sse", "POST", f"/stream/token?user={quote(u)}", allow_2xx=True),
            id=f"sse-token-user-{name}",
        )
        for name, u in users.items()
    ]
    return cases


def webhook_cases() -> list:
    def signed(body: bytes) -> dict:
        return signing.sign_headers(SECRET, f"msg_{uuid.uuid4().hex}", body)

    bodies = {**NOT_JSON, "number": b"5"}
    cases = [
        pytest.param(
            Http("receiver", "POST", "/webhook", signed, body), id=f"webhook-signed-{name}"
        )
        for name, body in bodies.items()
    ]

    def with_headers(**changes: str | bytes | None) -> Callable[[bytes], dict]:
        def make(body: bytes) -> dict:
            headers = signed(body)
            for key, value in changes.items():
                key = key.replace("_", "-")
                if value is None:
                    headers.pop(key)
                else:
                    headers[key] = value
            return headers

        return make

    variants = {
        "no-id": with_headers(webhook_id=None),
        "no-timestamp": with_headers(webhook_timestamp=None),
        "no-signature": with_headers(webhook_signature=None),
        "blank-timestamp": with_headers(webhook_timestamp=""),
        "stale-timestamp": with_headers(webhook_timestamp="1"),
        "signature-no-comma": with_headers(webhook_signature="v1"),
        "signature-not-base64": with_headers(webhook_signature="v1,!!!"),
        "signature-non-ascii": with_headers(webhook_signature="v1,★".encode()),
        "signature-wrong": with_headers(webhook_signature="v1,AAAA"),
    }
    body = dumps({"type": "email.bounced", "data": {}})
    cases += [
        pytest.param(Http("receiver", "POST", "/webhook", make, body), id=f"webhook-{name}")
        for name, make in variants.items()
    ]
    return cases


def provider_cases() -> list:
    def sub(**doc: object) -> bytes:
        return dumps({"url": "RECEIVER_URL", "event_types": ["order.created"], **doc})

    subscriptions = {
        **NOT_JSON,
        "url-object": dumps({"url": {}, "event_types": ["a"]}),
        "url-number": dumps({"url": 5, "event_types": ["a"]}),
        "event_types-string": sub(event_types="a"),
        "event_types-objects": sub(event_types=[{}]),
        "secret-object": sub(secret={"a": 1}),
        "secret-number": sub(secret=5),
        "secret-array": sub(secret=["whsec_x"]),
        "secret-not-base64": sub(secret="whsec_!!!"),
    }
    cases = [
        pytest.param(Http("provider", "POST", "/subscriptions", body=b), id=f"provider-sub-{n}")
        for n, b in subscriptions.items()
    ]
    events = {
        **NOT_JSON,
        "type-object": dumps({"type": {}}),
        "type-newline": dumps({"type": "a\nb"}),
        "data-array": dumps({"type": "order.created", "data": [1]}),
        "data-string": dumps({"type": "order.created", "data": "x"}),
    }
    cases += [
        pytest.param(Http("provider", "POST", "/events", body=b), id=f"provider-events-{n}")
        for n, b in events.items()
    ]
    replays = {
        **NOT_JSON,
        "ids-string": dumps({"ids": "1"}),
        "ids-floats": dumps({"ids": [1.5]}),
        "ids-booleans": dumps({"ids": [True]}),
        "ids-huge": dumps({"ids": [10**30]}),
    }
    cases += [
        pytest.param(
            Http("provider", "POST", "/dead-letters/replay", body=b), id=f"provider-replay-{n}"
        )
        for n, b in replays.items()
    ]
    return cases


CASES = (
    number_cases()
    + room_message_cases()
    + say_cases()
    + fanout_cases()
    + sse_auth_cases()
    + webhook_cases()
    + provider_cases()
)

# -- the servers ---------------------------------------------------------------------
SECRET = signing.generate_secret()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    receiver = Receiver(SECRET)
    outbox = tmp_path_factory.mktemp("bad-input") / "outbox.sqlite"
    factories = {
        "polling": polling.make_app,
        "streaming": streaming.make_app,
        "sse": sse.make_app,
        "room": room.make_app,
        "fanout": fanout.make_app,
        "receiver": receiver.app_factory(),
        # Loopback allowed, so a subscription's other fields are what gets checked.
        "provider": provider_app(outbox, allow_loopback=True),
    }
    servers = {name: ServerThread(f, name=f"bad-{name}").start() for name, f in factories.items()}
    try:
        for server in servers.values():
            server.publish("seed", {"n": 1})  # something to replay: seq 1 exists
        yield servers
    finally:
        for server in servers.values():
            server.stop()


# -- sending and judging ---------------------------------------------------------------
ANSWER_TIMEOUT = 3.0  # a refusal is immediate; waiting longer means it was accepted


def send(server: ServerThread, case: Http) -> requests.Response:
    body = case.body
    if body is not None:
        body = body.replace(b"RECEIVER_URL", b"http://127.0.0.1:9/webhook")
    headers = case.headers(body or b"") if callable(case.headers) else case.headers
    try:
        # stream=True: an accepted stream returns its headers, not its endless body.
        return requests.request(
            case.method,
            server.url + case.path,
            headers=headers,
            data=body,
            stream=True,
            timeout=(5, ANSWER_TIMEOUT),
        )
    except requests.ReadTimeout:
        pytest.fail(f"no answer within {ANSWER_TIMEOUT} s: the bad value was accepted")
    except requests.ConnectionError as exc:
        pytest.fail(f"the server dropped the connection instead of answering: {exc}")


def assert_refused_with_reason(status: int, body: bytes, allow_2xx: bool = False) -> None:
    shown = body[:300].decode("utf-8", "replace")
    assert status < 500, f"{status} (a server error) for bad input: {shown}"
    if allow_2xx and 200 <= status < 300:
        return
    assert 400 <= status < 500, f"{status} instead of a 4xx refusal: {shown}"
    try:
        reason = json.loads(body).get("error")
    except (ValueError, AttributeError):
        reason = None
    assert isinstance(reason, str) and reason, f"a {status} without a JSON reason: {shown}"


def check_http(server: ServerThread, case: Http) -> None:
    resp = send(server, case)
    with resp:
        status = resp.status_code
        # An accepted stream never ends: read nothing more of it.
        body = b"" if 200 <= status < 300 and case.method == "GET" else resp.content
    assert_refused_with_reason(status, body, case.allow_2xx)


def ws_connect(server: ServerThread, path: str) -> websocket.WebSocket:
    return websocket.create_connection(server.ws_url + path, timeout=ANSWER_TIMEOUT)


def next_room_answer(ws: websocket.WebSocket) -> tuple[str, object]:
    """("error", reason) for room.error, ("close", code) for a close frame, or
    ("probe", None) when our probe came back first (the bad input was accepted)."""
    for _ in range(50):  # bounded: a bad resume may replay a few events first
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            pytest.fail(f"no answer within {ANSWER_TIMEOUT} s")
        except (websocket.WebSocketConnectionClosedException, ConnectionError) as exc:
            pytest.fail(f"the connection was dropped without a close frame: {exc!r}")
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return "close", int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        if opcode != websocket.ABNF.OPCODE_TEXT:
            continue
        message = json.loads(data)
        if message.get("type") == "room.error":
            assert isinstance(message.get("error"), str) and message["error"]
            return "error", message["error"]
        if message.get("payload", {}).get("text") == PROBE_TEXT:
            return "probe", None
    pytest.fail("no room.error, close frame or probe within 50 messages")


PROBE_TEXT = "probe: did the bad message get an answer before me?"
SAY_PROBE = json.dumps({"type": "say", "text": PROBE_TEXT})
CLOSE_CODES = {1003, 1007, 1008, 1009}  # unsupported data, invalid payload, policy, too big


def check_ws_send(server: ServerThread, case: WsSend) -> None:
    ws = ws_connect(server, "/ws/room?token=demo")
    try:
        assert json.loads(ws.recv())["type"] == "room.welcome"
        if isinstance(case.message, bytes):
            ws.send_binary(case.message)
        else:
            ws.send(case.message)
        # Messages are handled in order: an answer to the bad one comes first.
        ws.send(SAY_PROBE)
        kind, detail = next_room_answer(ws)
        assert kind != "probe", "the bad message was accepted silently (no room.error)"
        if kind == "close":
            assert detail in CLOSE_CODES, f"closed with code {detail}"
            return
        # After a room.error the very same connection still works.
        ws.send(json.dumps({"type": "say", "text": "still here"}))
        for _ in range(50):
            message = json.loads(ws.recv())
            if message.get("payload", {}).get("text") == "still here":
                break
        else:
            pytest.fail("the connection stopped working after room.error")
    finally:
        ws.close()


def check_ws_open(server: ServerThread, case: WsOpen) -> None:
    try:
        ws = ws_connect(server, case.path)
    except websocket.WebSocketBadStatusException as exc:
        assert_refused_with_reason(exc.status_code, exc.resp_body or b"")
        return
    try:
        if case.server != "room":
            pytest.fail("upgraded despite a malformed cursor (expected a 4xx before upgrading)")
        assert json.loads(ws.recv())["type"] == "room.welcome"
        ws.send(SAY_PROBE)
        kind, detail = next_room_answer(ws)
        assert kind != "probe", "the bad cursor was accepted silently (no room.error)"
        if kind == "close":
            assert detail in CLOSE_CODES, f"closed with code {detail}"
    finally:
        ws.close()


def assert_still_serves(name: str, server: ServerThread) -> None:
    """One good request per server, after every bad one."""
    url = server.url
    if name == "room":
        ws = ws_connect(server, "/ws/room?token=demo")
        assert json.loads(ws.recv())["type"] == "room.welcome"
        ws.close()
        return
    if name == "receiver":
        body = dumps({"type": "email.bounced", "data": {}, "seq": 1})
        headers = signing.sign_headers(SECRET, f"msg_{uuid.uuid4().hex}", body)
        resp = requests.post(f"{url}/webhook", data=body, headers=headers, timeout=5)
        assert resp.status_code == 200, resp.text
        return
    good = {
        "polling": "/events?after=0",
        "streaming": "/stream/ndjson?after=0&limit=1",
        "sse": "/stream/sse?lastEventId=0&limit=1",
        "fanout": "/health",
        "provider": "/subscriptions",
    }[name]
    resp = requests.get(url + good, timeout=5)
    assert resp.status_code == 200, f"{good}: {resp.status_code} {resp.text[:200]}"


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_refused_with_a_reason_and_the_server_still_serves(lab, case):
    name = case.server if not isinstance(case, WsSend) else "room"
    server = lab[name]
    started = time.monotonic()
    try:
        if isinstance(case, Http):
            check_http(server, case)
        elif isinstance(case, WsOpen):
            check_ws_open(server, case)
        else:
            check_ws_send(server, case)
    finally:
        assert_still_serves(name, server)
    assert time.monotonic() - started < ANSWER_TIMEOUT + 2
