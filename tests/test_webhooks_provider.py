"""The provider: subscriptions, signed deliveries, retries, Retry-After, 410,
dead letters, the durable outbox across a restart, redirects, the wire."""

from __future__ import annotations

import random
import sqlite3
import time

import pytest
import requests
from tornado.web import Application, RequestHandler

from lab.provider_handle import ProviderHandle
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from servers.runtime import ServerThread
from servers.webhooks import signing
from servers.webhooks.provider import provider_app
from servers.webhooks.receiver import Receiver
from servers.webhooks.retry import (
    DEMO_SCHEDULE_S,
    SVIX_SCHEDULE_S,
    RetryPolicy,
    compressed,
    exponential_schedule,
    parse_retry_after,
)

FAST = (0, 0.02, 0.05, 0.1)  # a short schedule: 4 attempts within ~0.2 s


class Pair:
    def __init__(self, tmp_path, **options):
        self.secret = signing.generate_secret()
        self.recorder = ArrivalRecorder("receiver")
        self.receiver = Receiver(self.secret, recorder=self.recorder, slow_s=0.6)
        self.rserver = ServerThread(self.receiver.app_factory(), name="wh-r").start()
        self.path = tmp_path / "outbox.sqlite3"
        options = {"schedule": FAST, "allow_loopback": True, "timeout_s": 2.0, "seed": 1, **options}
        self.pserver = ServerThread(provider_app(self.path, **options), name="wh-p").start()
        self.provider = ProviderHandle(self.pserver)
        self.url = f"{self.rserver.url}/webhook"

    def subscribe(self, types=("email.bounced", "email.delivered")):
        sub, _ = self.provider.subscribe(self.url, list(types), self.secret)
        return sub

    def stop(self):
        self.pserver.stop()
        self.rserver.stop()


# Same start/yield/stop fixture shape as ``demo`` in test_webhooks_standalone.py,
# kept on purpose: there it is a subprocess, here two in-process servers.
@pytest.fixture()
def pair(tmp_path):
    p = Pair(tmp_path)
    yield p
    p.stop()


def test_delivers_subscribed_types_only(pair):
    pair.subscribe()
    sent = [
        pair.pserver.publish(t, {"n": i})
        for i, t in enumerate(["email.bounced", "email.opened", "email.delivered", "email.opened"])
    ]
    assert pair.provider.wait_idle()
    assert wait_until(lambda: pair.receiver.processed_once == 2)
    assert sorted(a.seq for a in pair.recorder.arrivals) == [sent[0].seq, sent[2].seq]
    assert {a.type for a in pair.recorder.arrivals} == {"email.bounced", "email.delivered"}


def test_the_request_on_the_wire_is_signed_and_exact(pair):
    pair.subscribe()
    pair.pserver.publish("email.bounced", {"to": "a@example.com"})
    assert pair.provider.wait_idle()
    raw = pair.provider.request_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /webhook HTTP/1.1"
    hdrs = dict(line.split(": ", 1) for line in lines[1:])
    assert int(hdrs["Content-Length"]) == len(body)
    assert hdrs["Content-Type"] == "application/json"
    assert signing.verify(pair.secret, {k.lower(): v for k, v in hdrs.items()}, body)


def test_connections_are_reused(pair):
    pair.subscribe()
    for i in range(20):
        pair.pserver.publish("email.bounced", {"n": i})
        assert wait_until(lambda i=i: pair.receiver.processed_once == i + 1)
    assert pair.provider.status()["connections_opened"] == 1


def test_retries_on_500_then_delivers_once(pair):
    pair.subscribe()
    pair.receiver.set_mode("500")
    ev = pair.pserver.publish("email.bounced", {})
    assert wait_until(lambda: len(pair.provider.attempts()) >= 2)
    pair.receiver.set_mode("healthy")
    assert pair.provider.wait_idle()
    attempts = pair.provider.attempts()
    outcomes = [a["outcome"] for a in attempts]
    assert outcomes[-1] == "delivered" and set(outcomes[:-1]) == {"retry"}
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert all(a["status_code"] == 500 for a in attempts[:-1])
    # delays follow the schedule (lower bounds only: a busy machine is late, never early)
    for prev, nxt in zip(attempts, attempts[1:], strict=False):
        scheduled = FAST[prev["attempt"]]
        assert prev["next_delay_s"] >= scheduled * 0.8 - 1e-9
        assert nxt["started_at"] - prev["started_at"] >= prev["next_delay_s"] - 0.005
    assert pair.recorder.wait_for(ev.seq)
    assert pair.receiver.processed_twice == 0


def test_dead_letter_after_the_last_attempt_then_replay(pair):
    pair.subscribe()
    pair.receiver.set_mode("500")
    pair.pserver.publish("email.bounced", {})
    assert wait_until(lambda: len(pair.provider.dead_letters()) == 1, timeout=5)
    attempts = pair.provider.attempts()
    assert len(attempts) == len(FAST) and attempts[-1]["outcome"] == "dead"
    dead = pair.provider.dead_letters()[0]
    assert dead.attempts == len(FAST) and "HTTP 500" in dead.last_error
    pair.receiver.set_mode("healthy")
    assert pair.provider.replay([dead.id]) == 1
    assert pair.provider.wait_idle()
    assert pair.provider.dead_letters() == []
    assert pair.receiver.processed[dead.msg_id] == 1  # same webhook-id as before


def test_timeout_then_retry_is_absorbed_by_the_receiver(tmp_path):
    p = Pair(tmp_path, timeout_s=0.2)
    try:
        p.subscribe()
        p.receiver.set_mode("slow")  # answers after 0.6 s
        p.pserver.publish("email.bounced", {})
        assert wait_until(lambda: p.receiver.duplicates_absorbed >= 1, timeout=5)
        p.receiver.set_mode("healthy")
        assert p.provider.wait_idle()
        errors = [a["error"] for a in p.provider.attempts()]
        assert "timed out after 0.2 s" in errors[0]
        assert p.receiver.processed_once == 1 and p.receiver.processed_twice == 0
    finally:
        p.stop()


def test_connection_refused_is_retried(pair):
    pair.subscribe()
    pair.rserver.stop()  # the receiver is down
    pair.pserver.publish("email.bounced", {})
    assert wait_until(lambda: len(pair.provider.attempts()) >= 2)
    assert "ConnectionRefused" in pair.provider.attempts()[0]["error"]
    pair.rserver.start()  # back on the same port
    assert pair.provider.wait_idle() or pair.provider.dead_letters()
    # with FAST the schedule may run out while down: replay whatever died
    pair.provider.replay()
    assert pair.provider.wait_idle()
    assert pair.receiver.processed_once == 1


def test_retry_after_is_honoured(pair):
    pair.subscribe()
    pair.receiver.retry_after_s = 1
    pair.receiver.set_mode("429")
    pair.pserver.publish("email.bounced", {})
    assert wait_until(lambda: len(pair.provider.attempts()) >= 1)
    first = pair.provider.attempts()[0]
    assert first["status_code"] == 429 and first["outcome"] == "retry"
    assert first["next_delay_s"] >= 1.0  # not FAST's 0.02 s
    assert "Retry-After 1 s" in first["error"]
    pair.receiver.set_mode("healthy")
    assert pair.provider.wait_idle()
    second = pair.provider.attempts()[1]
    assert second["started_at"] - first["started_at"] >= 1.0 - 0.005


def test_410_disables_the_subscription(pair):
    sub = pair.subscribe()
    pair.receiver.set_mode("410")
    pair.pserver.publish("email.bounced", {})
    assert wait_until(lambda: len(pair.provider.attempts()) == 1)
    assert pair.provider.wait_idle()
    time.sleep(0.2)
    attempts = pair.provider.attempts()
    assert len(attempts) == 1 and attempts[0]["outcome"] == "gone"  # no retry
    (s,) = pair.provider.endpoints()
    assert s.id == sub.id and s.status == "disabled" and "410" in s.disabled_reason
    pair.receiver.set_mode("healthy")
    pair.pserver.publish("email.bounced", {})  # not even enqueued any more
    time.sleep(0.2)
    assert len(pair.provider.attempts()) == 1 and pair.provider.status()["pending"] == 0
    pair.provider.enable(sub.id)
    pair.pserver.publish("email.bounced", {})
    assert wait_until(lambda: pair.receiver.processed_once == 1)


def test_redirect_is_not_followed(tmp_path):
    hits = {"target": 0}

    class Redirect(RequestHandler):
        def post(self):
            self.redirect("/target", status=307)

    class Target(RequestHandler):
        def post(self):
            hits["target"] += 1

        def check_xsrf_cookie(self):
            return

    with ServerThread(lambda hub: Application([("/hook", Redirect), ("/target", Target)])) as other:
        p = Pair(tmp_path, schedule=(0, 0.01))
        try:
            p.provider.subscribe(f"{other.url}/hook", ["email.bounced"])
            p.pserver.publish("email.bounced", {})
            assert wait_until(lambda: len(p.provider.dead_letters()) == 1)
            attempts = p.provider.attempts()
            assert all("HTTP 307 (redirect not followed)" in a["error"] for a in attempts)
            assert hits["target"] == 0
        finally:
            p.stop()


def test_outbox_survives_a_provider_restart(pair):
    pair.subscribe()
    pair.rserver.stop()  # receiver down: deliveries pile up
    sent = [pair.pserver.publish("email.bounced", {"n": i}) for i in range(5)]
    assert wait_until(lambda: pair.provider.status()["pending"] == 5)
    pair.pserver.stop()  # the provider goes away with 5 pending
    with sqlite3.connect(pair.path) as db:  # it is all on disk
        assert db.execute("SELECT COUNT(*) FROM messages WHERE status='pending'").fetchone() == (5,)
    pair.rserver.start()
    pair.pserver.start()  # a fresh Provider object, rebuilt from the file
    assert pair.provider.wait_idle(timeout=10)
    pair.provider.replay()  # anything whose short schedule ran out while down
    assert pair.provider.wait_idle(timeout=10)
    assert pair.recorder.wait_for(sent[-1].seq)
    assert pair.recorder.lost(sent[-1].seq) == 0
    assert pair.receiver.processed_twice == 0 and pair.recorder.duplicates == 0


def test_restart_mid_delivery_redelivers_and_receiver_absorbs(tmp_path):
    p = Pair(tmp_path, timeout_s=5.0)
    try:
        p.subscribe()
        p.receiver.set_mode("slow")  # accepts (processes) then answers after 0.6 s
        ev = p.pserver.publish("email.bounced", {})
        assert wait_until(lambda: p.receiver.processed_once == 1)
        p.pserver.stop()  # before the answer arrives: the delivered mark is never written
        p.receiver.set_mode("healthy")
        p.pserver.start()
        assert p.provider.wait_idle()
        assert p.receiver.duplicates_absorbed == 1  # at-least-once: it came again...
        assert p.receiver.processed_twice == 0  # ...and was not processed twice
        assert p.recorder.wait_for(ev.seq)
    finally:
        p.stop()


def test_key_rotation_end_to_end(pair):
    sub = pair.subscribe()
    new = pair.provider.rotate_secret(sub.id)
    pair.pserver.publish("email.bounced", {})
    assert wait_until(lambda: pair.receiver.processed_once == 1)  # old secret still verifies
    raw = pair.provider.request_bytes()
    assert raw.count(b"v1,") == 2
    pair.receiver.secrets = [new]
    pair.provider.finish_rotation(sub.id)
    pair.pserver.publish("email.bounced", {})
    assert wait_until(lambda: pair.receiver.processed_once == 2)
    assert pair.provider.request_bytes().count(b"v1,") == 1


def test_http_api_and_its_bad_input(pair):
    base = pair.pserver.url
    refused = requests.post(
        f"{base}/subscriptions", json={"url": "http://10.0.0.1/", "event_types": ["x"]}, timeout=5
    )
    assert refused.status_code == 400 and "private" in refused.json()["error"]
    for bad in ({"url": pair.url}, {"url": pair.url, "event_types": "email.bounced"}):
        r = requests.post(f"{base}/subscriptions", json=bad, timeout=5)
        assert r.status_code == 400 and "event_types" in r.json()["error"]
    assert requests.post(f"{base}/subscriptions", data=b"{", timeout=5).status_code == 400
    made = requests.post(
        f"{base}/subscriptions", json={"url": pair.url, "event_types": ["a.b"]}, timeout=5
    )
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    listed = requests.get(f"{base}/subscriptions", timeout=5).json()["subscriptions"]
    assert "secrets" not in listed[0]
    assert requests.post(f"{base}/events", json={"data": {}}, timeout=5).status_code == 400
    assert requests.post(f"{base}/events", json={"type": "a.b"}, timeout=5).status_code == 202
    assert wait_until(
        lambda: len(pair.provider.attempts()) == 1
    )  # signed with a secret the receiver lacks
    assert pair.provider.attempts()[0]["status_code"] == 401
    assert "attempts" in requests.get(f"{base}/deliveries", timeout=5).json()
    assert requests.get(f"{base}/deliveries?after=x", timeout=5).status_code == 400
    # ?after= is a resume cursor: only the attempts logged after that id (the
    # 401 is retried meanwhile, so more may come)
    cut = requests.get(f"{base}/deliveries?after=0", timeout=5).json()["attempts"][0]["id"]
    later = requests.get(f"{base}/deliveries?after={cut}", timeout=5).json()["attempts"]
    assert all(a["id"] > cut for a in later), later
    assert requests.get(f"{base}/dead-letters", timeout=5).status_code == 200
    r = requests.post(f"{base}/dead-letters/replay", json={"ids": ["x"]}, timeout=5)
    assert r.status_code == 400
    assert requests.delete(f"{base}/subscriptions/sub_nope", timeout=5).status_code == 404


def test_refused_at_delivery_time_when_loopback_not_allowed(tmp_path):
    p = Pair(tmp_path, allow_loopback=False)
    try:
        with pytest.raises(Exception, match="loopback"):
            p.subscribe()
    finally:
        p.stop()


def test_many_subscriptions_deliver_concurrently(tmp_path):
    p = Pair(tmp_path, timeout_s=5.0)
    try:
        p.receiver.set_mode("slow")  # each answer takes 0.6 s
        for _ in range(10):
            p.provider.subscribe(p.url, ["email.bounced"], p.secret)
        t0 = time.monotonic()
        p.pserver.publish("email.bounced", {})
        assert wait_until(lambda: p.receiver.processed_once == 10, timeout=10)
        assert p.provider.wait_idle(timeout=10)
        # Sequentially this would take 10 x 0.6 s; concurrency needs ~0.6 s.
        # (A generous bound, not a timing comparison: 6 s would mean serial.)
        assert time.monotonic() - t0 < 5.5
    finally:
        p.stop()


def test_retry_policy_schedule_jitter_and_retry_after():
    assert compressed(SVIX_SCHEDULE_S) == DEMO_SCHEDULE_S
    assert DEMO_SCHEDULE_S[:4] == (0, 0.005, 0.3, 1.8)
    policy = RetryPolicy(DEMO_SCHEDULE_S, jitter=0.2, rng=random.Random(7))
    delays = [policy.next_delay(n) for n in range(1, 9)]
    assert delays[-1] is None  # 8 attempts, then the dead letters
    for got, want in zip(delays[:-1], DEMO_SCHEDULE_S[1:], strict=True):
        assert want * 0.8 <= got <= want * 1.2
    assert (
        len({round(d / w, 6) for d, w in zip(delays[:-1], DEMO_SCHEDULE_S[1:], strict=True)}) > 1
    )  # jittered
    assert RetryPolicy((0, 1), jitter=0).next_delay(1, retry_after=5) == 5
    assert RetryPolicy((0, 10), jitter=0).next_delay(1, retry_after=5) == 10
    assert RetryPolicy((0, 1), jitter=0).next_delay(1, retry_after=10_000) == 60  # capped
    assert exponential_schedule(5, 1.0) == (0.0, 1.0, 2.0, 4.0, 8.0)
    with pytest.raises(ValueError):
        RetryPolicy(())
    with pytest.raises(ValueError):
        RetryPolicy((0, 1), jitter=1.5)


def test_parse_retry_after():
    assert parse_retry_after("120") == 120
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == 30


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"secret": 123}, "secret"),
        ({"secret": ["whsec_x"]}, "secret"),
        ({"secret": {"a": 1}}, "secret"),
        ({"secret": "whsec_short"}, "secret"),
        ({"url": 5}, "url"),
        ({"url": ["http://x"]}, "url"),
        ({"event_types": {"a": 1}}, "event_types"),
        ({"event_types": [1]}, "event type"),
    ],
)
def test_subscriptions_api_wrong_types_are_400_with_a_reason(pair, bad, words):
    doc = {"url": pair.url, "event_types": ["a.b"], **bad}
    r = requests.post(f"{pair.pserver.url}/subscriptions", json=doc, timeout=5)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]


@pytest.mark.parametrize(
    "path, doc",
    [
        ("/deliveries?after=%D9%A3", None),  # Arabic-Indic 3: int() would read it as 3
        ("/deliveries?after=%C2%B2", None),  # superscript 2
        ("/deliveries?after=" + "9" * 5000, None),
        ("/events", {"type": "a\nid: 9", "data": {}}),
        ("/events", {"type": "a.b", "data": [1]}),
        ("/events", {"type": 5}),
    ],
)
def test_provider_api_odd_numbers_and_types_are_400(pair, path, doc):
    url = f"{pair.pserver.url}{path}"
    r = requests.post(url, json=doc, timeout=5) if doc else requests.get(url, timeout=5)
    assert r.status_code == 400, r.text
    assert r.json()["error"]


def test_retry_after_takes_ascii_digits_only():
    assert parse_retry_after("²") is None and parse_retry_after("٣") is None
    assert parse_retry_after("9" * 400) is None


def test_a_url_with_spaces_and_non_ascii_is_stored_encoded_and_delivered(pair):
    # Before: the space went raw onto the request line (the receiver saw a
    # malformed request) and "Київ" raised UnicodeEncodeError at every attempt.
    sub, _ = pair.provider.subscribe(
        f"{pair.url}?note=a b&city=Київ", ["email.bounced"], pair.secret
    )
    assert sub.url == f"{pair.url}?note=a%20b&city=%D0%9A%D0%B8%D1%97%D0%B2"
    pair.pserver.publish("email.bounced", {})
    assert pair.provider.wait_idle()
    assert wait_until(lambda: pair.receiver.processed_once == 1)
    assert pair.provider.request_bytes().split(b"\r\n")[0] == (
        b"POST /webhook?note=a%20b&city=%D0%9A%D0%B8%D1%97%D0%B2 HTTP/1.1"
    )
    assert pair.provider.dead_letters() == []


@pytest.mark.parametrize(
    "path, body",
    [
        ("/dead-letters/replay", b'{"ids": [true]}'),
        ("/dead-letters/replay", b'{"ids": [99999999999999999999999]}'),
        ("/events", b"[" * 5000 + b"]" * 5000),
        ("/subscriptions", b'{"a":' * 3000 + b"1" + b"}" * 3000),
    ],
)
def test_provider_api_odd_json_is_400(pair, path, body):
    r = requests.post(f"{pair.pserver.url}{path}", data=body, timeout=5)
    assert r.status_code == 400, r.text
    assert requests.get(f"{pair.pserver.url}/deliveries", timeout=5).status_code == 200
