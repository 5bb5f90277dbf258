"""The receiver: every bad input gets a clear 4xx, duplicates are absorbed,
the work runs once, and it never crashes."""

from __future__ import annotations

import json
import time

import pytest
import requests

from lab.recorder import ArrivalRecorder
from servers.runtime import ServerThread
from servers.webhooks import signing
from servers.webhooks.receiver import Receiver

SECRET = signing.generate_secret()


@pytest.fixture()
def receiver():
    rec = Receiver(SECRET, recorder=ArrivalRecorder("receiver"), max_body=1024, slow_s=0.3)
    with ServerThread(rec.app_factory(), name="wh-receiver") as server:
        rec.url = f"{server.url}/webhook"
        yield rec


def body_for(seq=1, type="email.bounced"):
    doc = {
        "type": type,
        "data": {"to": "a@example.com"},
        "seq": seq,
        "sent_ns": time.monotonic_ns(),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def post(rec, body, headers):
    return requests.post(rec.url, data=body, headers=headers, timeout=5)


def signed(body, msg_id="msg_1", ts=None, secret=SECRET):
    return signing.sign_headers(secret, msg_id, body, ts)


def wait_processed(rec, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while rec.processed_once < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return rec.processed_once


def test_valid_delivery_is_answered_then_processed(receiver):
    body = body_for(1)
    answer = post(receiver, body, signed(body))
    assert answer.status_code == 200 and answer.json() == {"status": "accepted"}
    assert wait_processed(receiver, 1) == 1
    assert receiver.recorder.wait_for(1)
    assert receiver.last_receipts(1)[0].verdict == "processed"


def test_duplicate_webhook_id_is_absorbed(receiver):
    body = body_for(1)
    for _ in range(3):
        answer = post(receiver, body, signed(body, "msg_same"))
        assert answer.status_code == 200
    assert answer.json() == {"status": "duplicate"}
    wait_processed(receiver, 1)
    time.sleep(0.05)
    assert receiver.processed_twice == 0 and receiver.processed["msg_same"] == 1
    assert receiver.duplicates_absorbed == 2


@pytest.mark.parametrize(
    "case, status, words",
    [
        # One row per refusal: rows look alike (duplicates pairs them by shape), each
        # is its own case.
        ("no headers", 400, "missing header"),
        ("no signature", 400, "webhook-signature"),
        ("timestamp not a number", 400, "not integer"),
        ("signature not v1,base64", 400, "not 'v1,<base64>'"),
        ("forged signature", 401, "no signature matches"),
        ("wrong secret", 401, "no signature matches"),
        ("replayed old message", 401, "s old"),
        ("timestamp from the future", 401, "future"),
        ("tampered body", 401, "no signature matches"),
        ("too large", 413, "exceeds"),
        ("not JSON", 400, "not valid JSON"),
        ("JSON but not an object", 400, "JSON object"),
    ],
)
def test_bad_input(receiver, case, status, words):
    body = body_for(1)
    now = int(time.time())
    if case == "no headers":
        hdrs = {}
    elif case == "no signature":
        hdrs = {k: v for k, v in signed(body).items() if k != "webhook-signature"}
    elif case == "timestamp not a number":
        hdrs = {**signed(body), "webhook-timestamp": "yesterday"}
    elif case == "signature not v1,base64":
        hdrs = {**signed(body), "webhook-signature": "deadbeef"}
    elif case == "forged signature":
        hdrs = {**signed(body), "webhook-signature": "v1," + "A" * 43 + "="}
    elif case == "wrong secret":
        hdrs = signed(body, secret=signing.generate_secret())
    elif case == "replayed old message":
        hdrs = signed(body, ts=now - 3600)
    elif case == "timestamp from the future":
        hdrs = signed(body, ts=now + 3600)
    elif case == "tampered body":
        hdrs = signed(body)
        body = body.replace(b"a@example.com", b"evil@example.com")
    elif case == "too large":
        body = b'{"pad":"' + b"x" * 2000 + b'"}'
        hdrs = signed(body)
    elif case == "not JSON":
        body = b"to=a@example.com"
        hdrs = signed(body)
    else:
        body = b"[1,2,3]"
        hdrs = signed(body)
    answer = post(receiver, body, hdrs)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert words in answer.json()["error"]
    assert receiver.processed_once == 0
    assert sum(receiver.refused.values()) == 1
    # ...and it still works afterwards: never crashed
    good = body_for(2)
    assert post(receiver, good, signed(good, "msg_after")).status_code == 200


def test_get_is_not_allowed(receiver):
    assert requests.get(receiver.url, timeout=5).status_code == 405


@pytest.mark.parametrize("mode, status", [("500", 500), ("429", 429), ("410", 410)])
def test_failure_modes(receiver, mode, status):
    receiver.set_mode(mode)
    body = body_for(1)
    answer = post(receiver, body, signed(body))
    assert answer.status_code == status
    if mode == "429":
        assert answer.headers["Retry-After"] == "1"
    assert receiver.processed_once == 0
    receiver.set_mode("healthy")  # a failed attempt did not mark the id as seen
    assert post(receiver, body, signed(body)).status_code == 200
    assert wait_processed(receiver, 1) == 1


def test_flaky_mode_fails_some(receiver):
    receiver.set_mode("flaky", flaky_percent=50)
    codes = []
    for i in range(40):
        body = body_for(i + 1)
        codes.append(post(receiver, body, signed(body, f"msg_{i}")).status_code)
    assert set(codes) == {200, 500}
    with pytest.raises(ValueError):
        receiver.set_mode("flaky", flaky_percent=120)
    with pytest.raises(ValueError):
        receiver.set_mode("sideways")


def test_slow_mode_processes_inline_and_answers_late(receiver):
    receiver.set_mode("slow")
    body = body_for(1)
    with pytest.raises(requests.Timeout):
        requests.post(receiver.url, data=body, headers=signed(body, "msg_slow"), timeout=0.1)
    # the retry finds the id already accepted: absorbed, not processed twice
    assert post(receiver, body, signed(body, "msg_slow")).json() == {"status": "duplicate"}
    time.sleep(0.4)
    assert receiver.processed["msg_slow"] == 1 and receiver.processed_twice == 0


@pytest.mark.parametrize(
    "value",
    ["²", "٣", "1614265330²", "9" * 400, "1" * 5000, "+1614265330", "1614265330.5", "-1"],
)
def test_odd_timestamps_are_400_with_a_reason_never_500(receiver, value):
    # "²".isdigit() is True but int("²") raises; 400 digits overflow float().
    body = body_for(1)
    # sent as UTF-8 bytes, as a client could put any bytes in a header
    answer = post(receiver, body, {**signed(body), "webhook-timestamp": value.encode()})
    assert answer.status_code == 400, answer.text
    assert "webhook-timestamp" in answer.json()["error"]
    good = body_for(2)
    assert post(receiver, good, signed(good, "msg_after")).status_code == 200
