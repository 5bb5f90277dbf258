"""The receiver's inbox: stored before the 2xx, processed once, even across a
crash; a failed processing is retried, not absorbed; ids kept by time."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest
import requests

from lab.provider_handle import ProviderHandle
from lab.waiting import wait_until
from servers.runtime import ServerThread
from servers.webhooks import signing
from servers.webhooks.provider import provider_app
from servers.webhooks.receiver import Receiver

SECRET = signing.generate_secret()


def body_for(seq: int) -> bytes:
    return json.dumps({"type": "email.bounced", "data": {}, "seq": seq}).encode()


def deliver(url: str, msg_id: str, seq: int = 1, ts: float | None = None) -> requests.Response:
    body = body_for(seq)
    headers = signing.sign_headers(SECRET, msg_id, body, None if ts is None else int(ts))
    return requests.post(url, data=body, headers=headers, timeout=5)


def inbox_rows(path) -> dict[str, str]:
    with sqlite3.connect(path) as db:  # a second connection: what is on disk
        return dict(db.execute("SELECT msg_id, status FROM inbox").fetchall())


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_message_is_on_disk_before_the_2xx(tmp_path):
    path = tmp_path / "inbox.sqlite3"
    rec = Receiver(SECRET, inbox_path=path)
    rec.pause_processing()  # so what we read is the state right after the ack
    with ServerThread(rec.app_factory(), name="wh-inbox") as server:
        answer = deliver(f"{server.url}/webhook", "msg_a")
        assert answer.status_code == 200
        assert inbox_rows(path) == {"msg_a": "pending"}
        assert rec.processed_once == 0
        rec.resume_processing()
        assert wait_until(lambda: rec.processed_once == 1)
        assert inbox_rows(path) == {"msg_a": "processed"}
    rec.close()


def test_crash_between_ack_and_processing_loses_nothing(tmp_path):
    """The provider got 2xx for three events and will never send them again;
    the receiver's server stops before processing them. A brand-new receiver
    on the same file processes each exactly once."""
    path = tmp_path / "inbox.sqlite3"
    first = Receiver(SECRET, inbox_path=path)
    first.pause_processing()  # dies right after answering
    rserver = ServerThread(first.app_factory(), name="wh-r").start()
    pserver = ServerThread(
        provider_app(tmp_path / "outbox.sqlite3", schedule=(0, 0.02), allow_loopback=True),
        name="wh-p",
    ).start()
    provider = ProviderHandle(pserver)
    try:
        provider.subscribe(f"{rserver.url}/webhook", ["email.bounced"], SECRET)
        for n in range(3):
            pserver.publish("email.bounced", {"n": n})
        assert provider.wait_idle()
        assert provider.status()["delivered"] == 3  # acknowledged: the provider is done
        rserver.stop()  # the crash
        first.close()
        assert list(inbox_rows(path).values()) == ["pending"] * 3

        second = Receiver(SECRET, inbox_path=path)  # a new process, same file
        with ServerThread(second.app_factory(), name="wh-r2"):
            assert wait_until(lambda: second.processed_once == 3)
            assert second.processed_twice == 0 and second.pending == 0
        second.close()
    finally:
        pserver.stop()
        rserver.stop()


CRASHING_RECEIVER = textwrap.dedent(
    """
    import sys, time
    from servers.runtime import ServerThread
    from servers.webhooks.receiver import Receiver
    rec = Receiver(sys.argv[1], inbox_path=sys.argv[2])
    rec.pause_processing()
    server = ServerThread(rec.app_factory(), name="doomed").start()
    print(server.url, flush=True)
    time.sleep(60)
    """
)


def test_a_killed_receiver_process_loses_nothing(tmp_path):
    """The real thing: the receiver's process is killed after acknowledging."""
    path = tmp_path / "inbox.sqlite3"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_RECEIVER, SECRET, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        for n in range(3):
            assert deliver(f"{url}/webhook", f"msg_{n}", n).status_code == 200
    finally:
        proc.kill()  # no clean-up, no shutdown hook: a crash
        proc.wait(10)
        proc.stdout.close()
    rec = Receiver(SECRET, inbox_path=path)
    with ServerThread(rec.app_factory(), name="wh-after-kill"):
        assert wait_until(lambda: rec.processed_once == 3)
        assert rec.processed == {"msg_0": 1, "msg_1": 1, "msg_2": 1}
    rec.close()


def test_processing_that_throws_is_retried_later_not_absorbed():
    rec = Receiver(SECRET)
    done: list[int] = []
    failures = iter([RuntimeError("database down")])

    def handler(doc: dict) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        done.append(doc["seq"])

    rec.handlers.append(handler)
    with ServerThread(rec.app_factory(), name="wh-throws") as server:
        url = f"{server.url}/webhook"
        assert deliver(url, "msg_t", 7).status_code == 200
        # The provider's retry of the same id, while it waits: 2xx, not redone.
        assert deliver(url, "msg_t", 7).json() == {"status": "duplicate"}
        # done fills inside the transaction; processed_once counts after its commit
        assert wait_until(lambda: rec.processed_once == 1) and done == [7]
        assert rec.processed == {"msg_t": 1}
        assert rec.processing_failures == 1 and rec.pending == 0
        assert any("will retry" in r.verdict for r in rec.last_receipts())


def test_a_retry_while_pending_is_answered_2xx_and_processed_once(tmp_path):
    rec = Receiver(SECRET, inbox_path=tmp_path / "inbox.sqlite3")
    rec.pause_processing()
    with ServerThread(rec.app_factory(), name="wh-dup") as server:
        url = f"{server.url}/webhook"
        assert deliver(url, "msg_d").json() == {"status": "accepted"}
        assert deliver(url, "msg_d").json() == {"status": "duplicate"}
        rec.resume_processing()
        assert wait_until(lambda: rec.processed_once == 1)
        assert deliver(url, "msg_d").json() == {"status": "duplicate"}
        assert rec.processed == {"msg_d": 1} and rec.duplicates_absorbed == 2
    rec.close()


# -- ids are kept by time (item 11) ------------------------------------------------------
def test_an_old_id_is_not_forgotten_after_100_000_newer_ones():
    # The old receiver kept the newest 100,000 ids: at a few hundred
    # deliveries a second that is less than the 5-minute replay window.
    clock = FakeClock()
    rec = Receiver(SECRET, clock=clock, keep_ids_s=600)
    assert rec.store("msg_old", b"{}") == "new"
    for i in range(100_001):
        rec.store(f"msg_{i}", b"{}")
    clock.now += 599
    assert rec.store("msg_old", b"{}") == "duplicate"
    rec.close()


def test_ids_expire_by_time_and_a_full_inbox_refuses_rather_than_forgets(tmp_path):
    clock = FakeClock()
    rec = Receiver(SECRET, clock=clock, keep_ids_s=600, max_ids=3)
    with ServerThread(rec.app_factory(), name="wh-window") as server:
        url = f"{server.url}/webhook"
        for n in range(3):
            assert deliver(url, f"msg_{n}", n, ts=clock()).status_code == 200
        assert wait_until(lambda: rec.processed_once == 3)
        full = deliver(url, "msg_new", 9, ts=clock())
        assert full.status_code == 503 and "refusing rather than forgetting" in full.json()["error"]
        assert 1 <= int(full.headers["Retry-After"]) <= 601
        clock.now += 599  # still inside the window: still a duplicate, still full
        assert deliver(url, "msg_0", 0, ts=clock()).json() == {"status": "duplicate"}
        assert deliver(url, "msg_new", 9, ts=clock()).status_code == 503
        clock.now += 2  # past it: the three are forgotten, room again
        assert deliver(url, "msg_new", 9, ts=clock()).json() == {"status": "accepted"}
        assert wait_until(lambda: rec.processed_once == 4)
    rec.close()


def test_ids_are_kept_at_least_as_long_as_the_timestamp_tolerance():
    with pytest.raises(ValueError, match="tolerance"):
        Receiver(SECRET, keep_ids_s=60)  # shorter than the 5-minute window
