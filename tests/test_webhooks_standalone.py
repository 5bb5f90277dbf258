"""``python -m servers.webhooks`` is a demo, not an open door: its API needs
the token it prints, it refuses loopback URLs unless told, and it prints no
secret."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from lab.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


class Standalone:
    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "servers.webhooks", "--port", "0", "--tick", "0", *args],
            cwd=cwd,  # the outbox and inbox files land here
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        assert wait_until(lambda: any("subscription" in line for line in self.lines), 20), (
            self.output
        )
        self.url = re.search(r"http://127\.0\.0\.1:\d+", self.output)[0]
        self.token = re.search(r"API token: (\S+)", self.output)[1]

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()


# Same start/yield/stop fixture shape as ``pair`` in test_webhooks_provider.py,
# kept on purpose: here it is a subprocess, there two in-process servers.
@pytest.fixture()
def demo(tmp_path):
    d = Standalone(tmp_path)
    yield d
    d.stop()


def test_the_api_needs_the_printed_token(demo):
    bare = requests.get(f"{demo.url}/deliveries", timeout=5)
    assert bare.status_code == 401 and "token" in bare.json()["error"]
    wrong = requests.get(f"{demo.url}/deliveries", headers={"Authorization": "Bearer x"}, timeout=5)
    assert wrong.status_code == 401
    event = {"type": "email.bounced", "data": {}}
    assert requests.post(f"{demo.url}/events", json=event, timeout=5).status_code == 401
    auth = {"Authorization": f"Bearer {demo.token}"}
    assert (
        requests.post(f"{demo.url}/events", json=event, headers=auth, timeout=5).status_code == 202
    )
    # ...and the built-in receiver (on loopback, allowed in-process) got it
    delivered = lambda: requests.get(  # noqa: E731
        f"{demo.url}/deliveries?token={demo.token}", timeout=5
    ).json()["delivered"]
    assert wait_until(lambda: delivered() == 1, timeout=10)


def test_loopback_urls_are_refused_without_the_flag(demo):
    auth = {"Authorization": f"Bearer {demo.token}"}
    for url in (f"{demo.url}/webhook", "http://localhost:9/x", "http://[::1]:9/x"):
        doc = {"url": url, "event_types": ["none.such"]}
        r = requests.post(f"{demo.url}/subscriptions", json=doc, headers=auth, timeout=5)
        assert r.status_code == 400 and "loopback" in r.json()["error"], r.text


def test_no_secret_is_printed(demo):
    assert "whsec_" not in demo.output
    assert demo.token not in requests.get(f"{demo.url}/nowhere", timeout=5).text


def test_allow_loopback_flag(tmp_path):
    d = Standalone(tmp_path, "--allow-loopback")
    try:
        doc = {"url": "http://127.0.0.1:9/x", "event_types": ["none.such"]}
        r = requests.post(f"{d.url}/subscriptions?token={d.token}", json=doc, timeout=5)
        assert r.status_code == 201, r.text
        assert "--allow-loopback" in d.output
    finally:
        d.stop()
