"""The webhooks notebook's panels: expected-only loss counting, the failure
mode selector (down really stops the server), wire view, timeline, checkers."""

from __future__ import annotations

import json
import os

import matplotlib.pyplot as plt
import requests
import tornado.web

from lab.exercises import load_solution
from lab.exercises.webhooks import (
    check_backoff_delays,
    check_order_receiver,
    check_url_refusal,
    check_verify_webhook,
)
from lab.lessons.webhooks import (
    DeadLetterPanel,
    FailureModeSelector,
    ReceiptLog,
    delivery_timeline,
    kernel_files,
)
from lab.recorder import ExpectedRecorder
from lab.wire.http import request_view
from servers.events import Event
from servers.runtime import ServerThread
from servers.webhooks import signing
from servers.webhooks.receiver import Receiver


def test_expected_recorder_counts_only_expected_events_as_lost():
    rec = ExpectedRecorder("r")
    for seq in (1, 3, 4):  # 2 was another type: never expected
        rec.expect(seq)
    rec.record(Event(1, "a", {}, 0))
    rec.record(Event(4, "a", {}, 0))
    assert rec.missing() == [3] and rec.lost() == 1
    rec.record(Event(3, "a", {}, 0))
    assert rec.lost(rec.last_expected) == 0 and rec.out_of_order() == 1


def test_failure_mode_selector_down_stops_and_restarts_the_server():
    receiver = Receiver(signing.generate_secret())
    with ServerThread(receiver.app_factory(), name="ui-r") as server:
        port = server.port
        modes = FailureModeSelector(receiver, server)
        modes.mode.value = "down"
        assert not server.running
        modes.mode.value = "500"
        assert server.running and server.port == port and receiver.mode == "500"
        modes.flaky.value = 40
        modes.mode.value = "flaky"
        assert receiver.flaky_percent == 40 and "40%" in modes.status.value
        modes.close()


def test_receipt_log_shows_verdicts_and_headers():
    secret = signing.generate_secret()
    receiver = Receiver(secret)
    log = ReceiptLog(receiver)
    with ServerThread(receiver.app_factory(), name="ui-r") as server:
        body = b'{"type":"email.bounced","seq":1,"sent_ns":1}'
        requests.post(f"{server.url}/webhook", data=body, headers={"webhook-id": "x"}, timeout=5)
        log.refresh()
        assert "missing header" in log.html.value and "webhook-id" in log.html.value
    log.close()


def test_wire_view_counts_bytes():
    raw = b"POST /webhook HTTP/1.1\r\nHost: a\r\nwebhook-id: m\r\n\r\n{}"
    view = request_view(raw).value
    assert "total on the wire: <b>52</b>" in view and "␍␊" in view


def test_timeline_and_dead_letter_panel():
    attempts = [
        {"message": 1, "seq": 1, "started_at": 10.0, "outcome": "retry", "error": "HTTP 500"},
        {"message": 1, "seq": 1, "started_at": 10.3, "outcome": "delivered", "error": None},
        {"message": 2, "seq": 2, "started_at": 10.1, "outcome": "dead", "error": "timed out"},
    ]
    fig = delivery_timeline(attempts)  # headless: matplotlib picks the Agg backend
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "HTTP error, will retry" in labels and "delivered (2xx)" in labels
    plt.close(fig)

    class FakeProvider:
        def dead_letters(self):
            return []

        def replay(self):
            return 0

    panel = DeadLetterPanel(FakeProvider())
    panel.replay_button.click()
    assert "dead letters: 0" in panel.html.value


def test_checkers_accept_solutions_and_reject_wrong_answers():
    assert check_verify_webhook(load_solution("01_verify_webhook")["verify_webhook"])
    wrong = check_verify_webhook(lambda secret, headers, body, now: True)
    assert not wrong and "tampered" in str(wrong)
    raising = check_verify_webhook(lambda *a: 1 / 0)
    assert not raising and "ZeroDivisionError" in str(raising)
    assert check_backoff_delays(load_solution("01_backoff_delays")["backoff_delays"])
    flat = check_backoff_delays(lambda a, b, f, c, j, r: [0.0] + [b] * (a - 1))
    assert not flat and "base * factor" in str(flat)
    no_jitter = check_backoff_delays(
        lambda a, b, f, c, j, r: [0.0] + [min(c, b * f**i) for i in range(a - 1)]
    )
    assert not no_jitter and "jitter" in str(no_jitter)


def test_receiver_checker_accepts_the_solution_and_rejects_wrong_handlers():
    """Notebook 01's server-code exercise, tested both ways."""
    solution = load_solution("01_fix_receiver")["OrderReceiver"]
    assert check_order_receiver(solution)

    class Trusting(tornado.web.RequestHandler):  # the exercise's starting point
        def initialize(self, secret, seen, process):
            self.process = process

        def post(self):
            self.process(json.loads(self.request.body))
            self.finish({"status": "accepted"})

    class Forgetful(solution):  # verifies, but remembers no id: a retry is processed again
        def initialize(self, secret, seen, process):
            super().initialize(secret, set(), process)

    class Reserialising(solution):  # verifies parsed-and-dumped JSON, not the raw bytes
        def post(self):
            self.request.body = json.dumps(json.loads(self.request.body)).encode()
            super().post()

    class Accepting(solution):  # remembers ids but answers 200 to everything
        def post(self):
            doc = json.loads(self.request.body)
            if self.request.headers["webhook-id"] not in self.seen:
                self.seen.add(self.request.headers["webhook-id"])
                self.process(doc)
            self.finish({})

    assert "forged signature: answered 200" in str(check_order_receiver(Trusting))
    assert "retry" in str(check_order_receiver(Forgetful))
    assert "answered 401" in str(check_order_receiver(Reserialising))
    assert "forged signature: answered 200" in str(check_order_receiver(Accepting))


def test_url_refusal_checker_accepts_the_solution_and_rejects_wrong_answers():
    assert check_url_refusal(load_solution("01_url_refusal")["refuse_reason"])
    assert not check_url_refusal(lambda url, addresses: None)  # calls anything
    only_global = load_solution("01_url_refusal")["ipaddress"]

    def forgets_multicast(url, addresses):
        return next((a for a in addresses if not only_global.ip_address(a).is_global), None)

    feedback = check_url_refusal(forgets_multicast)
    assert not feedback and "is_multicast" in str(feedback)


def test_mode_selector_ensure_acts_only_when_the_learner_did_not():
    receiver = Receiver(signing.generate_secret())
    with ServerThread(receiver.app_factory(), name="ui-ensure") as server:
        modes = FailureModeSelector(receiver, server)
        assert modes.ensure("500").startswith("Nobody did it yet") and receiver.mode == "500"
        assert modes.ensure("500").startswith("You did it")
        modes.close()


def test_kernel_files_are_per_process_and_stale_ones_go(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stale = tmp_path / "webhooks-outbox-999999999.sqlite3"  # no such process
    stale.write_bytes(b"x")
    (outbox,) = kernel_files("outbox")
    assert outbox.name == f"webhooks-outbox-{os.getpid()}.sqlite3"
    assert not stale.exists() and not outbox.exists()
