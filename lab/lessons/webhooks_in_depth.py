"""Helpers for notebook 01 in depth (``01_webhooks_in_depth.ipynb``).

The requests an attacker would send to a webhook receiver, and the URLs a
user might try to register at a provider, built here so the notebook shows
what each one does rather than how it is assembled.

* ``captured``: the headers and body of one delivery the provider sent.
* ``attack_requests``: forged, tampered, replayed, future-dated, malformed
  and oversized deliveries, made from one captured authentic delivery.
* ``send_each``: POST each one to the receiver, one table row per request.
* ``DANGEROUS_URLS`` and ``register_each``: what a provider must refuse to
  call (SSRF), tried against its ``POST /subscriptions``.
* ``redirect_probe``: a receiver that answers 307 to an internal URL; the
  provider must not follow it.
"""

from __future__ import annotations

import time
from typing import Any

import requests
import tornado.web

from lab.waiting import wait_until
from servers.runtime import ServerThread
from servers.webhooks import signing

Request = tuple[dict[str, str], bytes]


def captured(raw: bytes) -> Request:
    """The headers (names lower-cased) and the body of one raw HTTP request."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}, body


def attack_requests(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Request]:
    """Name -> (headers, body), from one captured delivery (``headers``, ``body``)
    signed with ``secret``. The replays reuse its ``webhook-id``."""
    now, msg_id = int(time.time()), headers["webhook-id"]
    without_signature = {k: v for k, v in headers.items() if k != "webhook-signature"}
    big = b"x" * 1_000_000
    return {
        "forged signature": ({**headers, "webhook-signature": "v1," + "A" * 43 + "="}, body),
        "signed with another secret": (
            signing.sign_headers(signing.generate_secret(), "msg_evil", body),
            body,
        ),
        "tampered body": (headers, body[:-1] + b',"refund":"yes"}'),
        "replayed capture (same id, fresh)": (headers, body),
        "replayed capture, 10 min old": (
            signing.sign_headers(secret, msg_id, body, now - 600),
            body,
        ),
        "timestamp 10 min in the future": (
            signing.sign_headers(secret, "msg_future", body, now + 600),
            body,
        ),
        "missing signature header": (without_signature, body),
        "signature header garbage": ({**headers, "webhook-signature": "garbage"}, body),
        "not JSON (signed)": (signing.sign_headers(secret, "msg_form", b"to=a@b.c"), b"to=a@b.c"),
        "oversized body (1 MB)": (signing.sign_headers(secret, "msg_big", big), big),
    }


def send_each(url: str, attacks: dict[str, Request]) -> list[dict]:
    """POST every request to ``url``: one row per request, with the answer."""
    rows = []
    for name, (headers, body) in attacks.items():
        answer = requests.post(url, data=body, headers=headers, timeout=5)
        said = answer.json()
        rows.append(
            {
                "attack": name,
                "status": answer.status_code,
                "receiver says": said.get("error") or said.get("status"),
            }
        )
    return rows


DANGEROUS_URLS = [
    "http://10.0.0.5/admin",  # a private network
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
    "http://[::1]:8000/hook",  # loopback, IPv6
    "http://localhost:8000/hook",  # loopback by name
    "ftp://93.184.216.34/hook",  # not http(s)
    "file:///etc/passwd",
    "http://user:password@93.184.216.34/hook",  # credentials in the URL
]


def register_each(provider_url: str, urls: list[str]) -> list[dict]:
    """Try to subscribe each URL at the provider's HTTP API: one row each."""
    rows = []
    for url in urls:
        answer = requests.post(
            f"{provider_url}/subscriptions",
            json={"url": url, "event_types": ["email.bounced"]},
            timeout=10,
        )
        rows.append(
            {"url": url, "status": answer.status_code, "provider says": answer.json().get("error")}
        )
    return rows


class Redirect(tornado.web.RequestHandler):
    """A receiver (or an attacker's server) that answers 307 to an internal URL."""

    def post(self) -> None:
        self.redirect("/internal-admin", status=307)


class InternalAdmin(tornado.web.RequestHandler):
    """The internal endpoint the redirect points at: records any call."""

    def post(self) -> None:
        self.application.settings["hits"].append(self.request.body)


def redirect_probe(provider: Any) -> tuple[list[dict], list[bytes]]:
    """Subscribe a redirecting receiver at ``provider`` (a ``ProviderHandle``),
    publish one event to it and return (the provider's attempts, the calls
    that reached the internal endpoint)."""
    hits: list[bytes] = []
    routes = [("/hook", Redirect), ("/internal-admin", InternalAdmin)]
    app = lambda hub: tornado.web.Application(routes, hits=hits)  # noqa: E731
    with ServerThread(app, name="wh-redirector") as server:
        probe, _ = provider.subscribe(f"{server.url}/hook", ["security.probe"])
        mark = len(provider.attempts())
        provider.publish("security.probe", {})
        wait_until(lambda: len(provider.attempts(mark)) >= 2, timeout=5)
        attempts = provider.attempts(mark)
        provider.delete(probe.id)
        provider.wait_idle(timeout=5)  # its next retry finds no subscription: a dead letter
    return attempts, hits
