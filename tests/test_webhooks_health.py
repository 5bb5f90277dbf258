"""Per-endpoint health at the provider: the numbers, one alert at the
threshold, disabling after a window of failures, deliveries held while
disabled, re-enable and replay (each event once), and a restart that keeps it all."""

from __future__ import annotations

import time

import pytest
import requests

from lab.provider_handle import ProviderHandle
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from servers.runtime import ServerThread
from servers.webhooks import signing
from servers.webhooks.health import HealthConfig, NotDisabledError, UnknownEndpointError
from servers.webhooks.provider import provider_app
from servers.webhooks.receiver import Receiver

FAST = (0, 0.02)  # two attempts per message
WINDOW = (0, 0.05, 0.1, 0.2, 0.4, 0.8)  # attempts at about 0, 0.05, 0.15, 0.35, 0.75 s


class Pair:
    def __init__(self, tmp_path, schedule=FAST, **health):
        self.secret = signing.generate_secret()
        self.recorder = ArrivalRecorder("receiver")
        self.receiver = Receiver(self.secret, recorder=self.recorder)
        self.rserver = ServerThread(self.receiver.app_factory(), name="wh-r").start()
        self.path = tmp_path / "outbox.sqlite3"
        self.app = provider_app(
            self.path, schedule=schedule, allow_loopback=True, timeout_s=1.0, seed=1,
            health=HealthConfig(**health),
        )  # fmt: skip
        self.pserver = ServerThread(self.app, name="wh-p").start()
        self.provider = ProviderHandle(self.pserver)
        self.sub, _ = self.provider.subscribe(
            f"{self.rserver.url}/webhook", ["email.bounced"], self.secret
        )

    def publish(self, n=1):
        return [self.pserver.publish("email.bounced", {"n": i}) for i in range(n)]

    def health(self):
        return self.provider.health(self.sub.id)[0]

    def stop(self):
        self.pserver.stop()
        self.rserver.stop()


@pytest.fixture()
def make(tmp_path):
    pairs = []

    def make(**kw):
        pairs.append(Pair(tmp_path, **kw))
        return pairs[-1]

    yield make
    for p in pairs:
        p.stop()


def test_health_numbers_after_a_mix_of_outcomes(make):
    p = make()
    p.publish(2)
    assert wait_until(lambda: p.receiver.processed_once == 2) and p.provider.wait_idle()
    p.receiver.set_mode("500")
    p.publish(1)
    assert wait_until(lambda: len(p.provider.dead_letters()) == 1)
    h = p.health()
    assert h["attempts_counted"] == 4 and h["success_rate"] == 0.5
    assert h["consecutive_failures"] == 2 and h["status"] == "active"
    assert h["last_success_at"] < h["last_failure_at"] and h["failing_for_s"] >= 0
    p.receiver.set_mode("healthy")
    p.publish(1)
    assert wait_until(lambda: p.receiver.processed_once == 3) and p.provider.wait_idle()
    h = p.health()
    assert h["consecutive_failures"] == 0 and h["failing_for_s"] is None
    assert h["success_rate"] == 3 / 5 and h["last_success_at"] > h["last_failure_at"]


def test_alert_raised_once_at_the_threshold(make):
    p = make(schedule=(0, 0.01, 0.02, 0.03), alert_after=3)
    p.receiver.set_mode("500")
    p.publish(2)  # 8 failed attempts in one streak
    assert wait_until(lambda: len(p.provider.dead_letters()) == 2)
    alerts = p.provider.alerts()
    assert [a["kind"] for a in alerts] == ["failing"], alerts
    assert alerts[0]["detail"].startswith("3 consecutive failures")
    assert p.health()["alerted"] and p.health()["status"] == "active"  # 5 days not reached
    p.receiver.set_mode("healthy")
    p.provider.replay()
    assert wait_until(lambda: p.receiver.processed_once == 2)
    assert not p.health()["alerted"]  # a success ends the streak: the next one may alert again


def test_disable_hold_reenable_replay_each_event_once(make):
    p = make(schedule=WINDOW, alert_after=2, disable_after_s=0.3)
    p.rserver.stop()  # down: connection refused
    first = p.publish(1)
    assert wait_until(lambda: p.health()["status"] == "disabled", timeout=5)
    h = p.health()
    assert "failing continuously" in h["disabled_reason"]
    attempts = p.provider.attempts()
    assert attempts[-1]["started_at"] - attempts[0]["started_at"] >= 0.3 - 0.05  # jitter 20 %
    assert [a["kind"] for a in p.provider.alerts()] == ["failing", "disabled"]
    # While disabled: new deliveries are held, not attempted, not lost.
    during = p.publish(3)
    n_attempts = len(p.provider.attempts())
    time.sleep(0.4)
    assert len(p.provider.attempts()) == n_attempts  # nothing attempted
    assert p.health()["held"] == 4 and p.provider.status()["pending"] == 0  # 3 new + 1 retry
    # Re-enable: bad input first.
    with pytest.raises(UnknownEndpointError, match="no subscription"):
        p.provider.reenable("sub_nope")
    api = p.pserver.url
    assert requests.post(f"{api}/subscriptions/sub_nope/enable", timeout=5).status_code == 404
    p.rserver.start()
    answer = requests.post(f"{api}/subscriptions/{p.sub.id}/enable", json={}, timeout=5)
    assert answer.status_code == 200 and answer.json()["released"] == 4, answer.text
    with pytest.raises(NotDisabledError, match="already active"):
        p.provider.reenable(p.sub.id)
    again = requests.post(f"{api}/subscriptions/{p.sub.id}/enable", timeout=5)
    assert again.status_code == 409 and "already active" in again.json()["error"]
    assert p.recorder.wait_for(during[-1].seq) and p.provider.wait_idle()
    assert p.recorder.lost(during[-1].seq) == 0 and first[0].seq in {
        a.seq for a in p.recorder.arrivals
    }
    assert p.receiver.processed_once == 4 and p.receiver.processed_twice == 0
    assert p.recorder.duplicates == 0 and p.provider.dead_letters() == []
    doc = requests.get(f"{api}/health", timeout=5).json()
    assert doc["endpoints"][0]["status"] == "active" and doc["alerts"][-1]["kind"] == "reenabled"


def test_deleting_a_disabled_endpoint_dead_letters_what_it_held(make):
    p = make(schedule=WINDOW, alert_after=2, disable_after_s=0.3)
    p.rserver.stop()
    p.publish(1)
    assert wait_until(lambda: p.health()["status"] == "disabled", timeout=5)
    p.publish(2)
    assert wait_until(lambda: p.health()["held"] == 3)
    answer = requests.delete(f"{p.pserver.url}/subscriptions/{p.sub.id}", timeout=5)
    assert answer.status_code == 200 and answer.json() == {"deleted": p.sub.id}
    # Not left held for an endpoint that no longer exists: dead letters, listed, with why.
    dead = p.provider.dead_letters()
    assert len(dead) == 3 and {m.last_error for m in dead} == {"subscription deleted"}
    assert p.provider.messages("held") == [] and p.provider.status()["pending"] == 0
    assert (
        requests.delete(f"{p.pserver.url}/subscriptions/{p.sub.id}", timeout=5).status_code == 404
    )


def test_health_and_disabled_state_survive_a_provider_restart(make):
    p = make(schedule=WINDOW, alert_after=2, disable_after_s=0.3)
    p.rserver.stop()
    p.publish(1)
    assert wait_until(lambda: p.health()["status"] == "disabled", timeout=5)
    held = p.publish(2)
    assert wait_until(lambda: p.health()["held"] == 3)
    before = p.health()
    p.pserver.stop()
    p.pserver.start()  # a fresh Provider, rebuilt from the file
    after = p.health()
    for key in ("status", "consecutive_failures", "last_failure_at", "disabled_at", "held"):
        assert after[key] == before[key], key
    assert after["success_rate"] == 0.0 and len(p.provider.alerts()) == 2
    time.sleep(0.3)
    assert p.provider.status()["pending"] == 0 and after["held"] == 3  # still held, not sent
    p.rserver.start()
    assert p.provider.reenable(p.sub.id)["released"] == 3
    assert p.recorder.wait_for(held[-1].seq) and p.provider.wait_idle()
    assert p.receiver.processed_once == 3 and p.receiver.processed_twice == 0


def test_health_api_bad_input_is_a_clear_error(make):
    p = make()
    api = p.pserver.url
    unknown = requests.get(f"{api}/subscriptions/sub_nope/health", timeout=5)
    assert unknown.status_code == 404 and "no subscription" in unknown.json()["error"]
    odd = requests.post(f"{api}/subscriptions/{p.sub.id}/enable", json={"replay": 1}, timeout=5)
    assert odd.status_code == 400 and "replay" in odd.json()["error"]
    assert requests.get(f"{api}/health?after=x", timeout=5).status_code == 400
    with pytest.raises(ValueError, match="unknown health settings"):
        p.provider.configure_health(disable_after=1)
    with pytest.raises(ValueError, match="positive"):
        p.provider.configure_health(disable_after_s=0)
    p.publish(1)  # the provider still serves
    assert wait_until(lambda: p.receiver.processed_once == 1)


def test_the_notebook_health_view_follows_the_attempts(make):
    from lab.lessons.webhooks_health import HealthView

    p = make(schedule=WINDOW, alert_after=2, disable_after_s=0.3)
    view = HealthView(p.provider, p.sub.id)
    try:
        p.rserver.stop()
        p.publish(1)
        # Redrawn by the provider's listener, without a refresh from here.
        assert wait_until(lambda: "disabled</span>" in view.html.value, timeout=5)
        assert "failing" in view.html.value and len(view.alerts()) == 2
        p.rserver.start()
        assert view.reenable().startswith("re-enabled") and view.reenabled == 1
        assert "already active" in view.reenable()  # a second click: said, not raised
        view.settle()
        assert p.receiver.processed_once == 1 and p.receiver.processed_twice == 0
    finally:
        view.close()
    assert p.pserver.call(lambda: p.pserver.state.health.listeners) == []
