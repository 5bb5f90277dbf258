"""Checkers for notebook 01's exercises (webhooks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import json
import random
import time
from collections import Counter
from collections.abc import Callable

import requests
import tornado.web

from servers.runtime import ServerThread
from servers.webhooks import signing

from . import Feedback

VECTOR = {
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "msg_id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "timestamp": 1614265330,
    "body": b'{"test": 2432232314}',
    "signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
}


def _headers(msg_id=VECTOR["msg_id"], ts=VECTOR["timestamp"], sig=VECTOR["signature"]) -> dict:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def check_verify_webhook(fn: Callable[[str, dict, bytes, float], bool]) -> Feedback:
    """Exercise 1: ``fn(secret, headers, body, now) -> bool``: True only for an
    authentic delivery inside the 5-minute window."""
    fb = Feedback("Exercise 1: verify a webhook")
    v = VECTOR
    other = signing.generate_secret()
    rotated = signing.sign_headers([other, v["secret"]], v["msg_id"], v["body"], v["timestamp"])
    cases = [
        ("the official test vector", v["secret"], _headers(), v["body"], v["timestamp"], True),
        (
            "a tampered body (one digit changed)",
            v["secret"],
            _headers(),
            b'{"test": 2432232315}',
            v["timestamp"],
            False,
        ),
        (
            "the same JSON re-serialised without the space",
            v["secret"],
            _headers(),
            b'{"test":2432232314}',
            v["timestamp"],
            False,
        ),
        (
            "a different webhook-id",
            v["secret"],
            _headers(msg_id="msg_x"),
            v["body"],
            v["timestamp"],
            False,
        ),
        ("the wrong secret", other, _headers(), v["body"], v["timestamp"], False),
        (
            "a replay 10 minutes later (timestamp too old)",
            v["secret"],
            _headers(),
            v["body"],
            v["timestamp"] + 600,
            False,
        ),
        (
            "a timestamp 10 minutes in the future",
            v["secret"],
            _headers(),
            v["body"],
            v["timestamp"] - 600,
            False,
        ),
        (
            "4 minutes old (still inside the 5-minute window)",
            v["secret"],
            _headers(),
            v["body"],
            v["timestamp"] + 240,
            True,
        ),
        (
            "two signatures during a key rotation, the second one matching",
            v["secret"],
            rotated,
            v["body"],
            v["timestamp"],
            True,
        ),
    ]
    for label, secret, headers, body, now, want in cases:
        try:
            got = fn(secret, dict(headers), body, now)
        except Exception as exc:  # feedback, not a traceback
            fb.fail(f"{label}: your function raised {type(exc).__name__}: {exc}")
            continue
        if bool(got) != want:
            hint = {
                "the official test vector": "sign f'{id}.{timestamp}.' + body with HMAC-SHA256, "
                "key = base64-decoded secret without 'whsec_', compare to the part after 'v1,'",
                "the same JSON re-serialised without the space": "verify the raw bytes you got",
                "a replay 10 minutes later (timestamp too old)": "check |now - timestamp| <= 300",
                "a timestamp 10 minutes in the future": "the window applies in both directions",
                "two signatures during a key rotation, the second one matching": (
                    "the header may hold several space-separated 'v1,<sig>' entries: "
                    "accept if any matches"
                ),
            }.get(label, "")
            fb.fail(f"{label}: expected {want}, got {got!r}" + (f" ({hint})" if hint else ""))
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    if source and "compare_digest" not in source:
        fb.fail(
            "compare signatures with hmac.compare_digest: '==' stops at the first differing byte, "
            "and that timing difference lets an attacker guess a signature byte by byte"
        )
    if fb.passed:
        fb.note("all 9 cases right: authentic, tampered, replayed, rotated")
    return fb


ORDER = b'{"type":"order.paid","data":{"order":7}}'  # compact, as providers send it


def check_order_receiver(handler: type) -> Feedback:
    """Exercise 1: ``handler`` (a RequestHandler taking ``secret``, ``seen`` and
    ``process``) runs in a real server and gets six POSTs: authentic ones are
    processed once each, a retry is not processed again; forged, tampered and old
    ones get 401."""
    fb = Feedback("Exercise 1: fix the receiver")
    secret, done = signing.generate_secret(), []
    routes = [("/webhook", handler, {"secret": secret, "seen": set(), "process": done.append})]
    old = int(time.time()) - 600
    cases = [  # (what, headers, body, status class wanted, processed so far)
        ("an authentic delivery", signing.sign_headers(secret, "msg_1", ORDER), ORDER, 2, 1),
        ("a forged signature", {**signing.sign_headers(secret, "msg_2", ORDER),
                                "webhook-signature": "v1," + "A" * 43 + "="}, ORDER, 401, 1),
        ("a tampered body", signing.sign_headers(secret, "msg_3", ORDER),
         ORDER.replace(b"7", b"8"), 401, 1),
        ("a capture replayed 10 minutes later", signing.sign_headers(secret, "msg_4", ORDER, old),
         ORDER, 401, 1),
        ("the same delivery sent again (a retry)", signing.sign_headers(secret, "msg_1", ORDER),
         ORDER, 2, 1),
        ("a second authentic delivery", signing.sign_headers(secret, "msg_5", ORDER), ORDER, 2, 2),
    ]  # fmt: skip
    hints = {
        "an authentic delivery": "verify the raw self.request.body; never re-serialised JSON",
        "the same delivery sent again (a retry)": "remember each webhook-id in self.seen "
        "and answer 200 without processing an id you have seen",
        "a forged signature": "signing.verify raises signing.VerificationError: answer its "
        ".status (401)",
    }
    quiet = {"log_function": lambda _handler: None}  # refusals are the point, not warnings
    server = ServerThread(lambda hub: tornado.web.Application(routes, **quiet), name="wh-exercise")
    with server:
        for what, headers, body, want, processed in cases:
            try:
                got = requests.post(f"{server.url}/webhook", data=body, headers=headers, timeout=5)
            except requests.RequestException as exc:
                return fb.fail(f"{what}: no answer ({type(exc).__name__})")
            server.call(lambda: None)  # work done after the answer has run by now
            status_ok = got.status_code // 100 == 2 if want == 2 else got.status_code == want
            if not status_ok:
                wanted = "a 2xx" if want == 2 else str(want)
                hint = hints.get(what, hints["a forged signature"])
                return fb.fail(f"{what}: answered {got.status_code}, wanted {wanted} ({hint})")
            if len(done) != processed:
                hint = hints.get(what, "process only what passed the check")
                return fb.fail(f"{what}: processed {len(done)} in all, wanted {processed} ({hint})")
    if done and done[0] != json.loads(ORDER):
        return fb.fail(f"process() got {done[0]!r}: pass it the parsed JSON body")
    return fb.note("all 6 deliveries right: authentic once, retry absorbed, 3 attacks refused")


def check_backoff_delays(fn: Callable[..., list], plot: bool = False) -> Feedback:
    """Exercise 2: ``fn(attempts, base, factor, cap, jitter, rng)`` returns the
    delay before each attempt: 0 first, then base * factor**i capped at ``cap``,
    each spread by ±``jitter`` (a fraction) using ``rng.uniform``."""
    fb = Feedback("Exercise 2: backoff with jitter")
    try:
        delays = list(fn(6, 5.0, 3.0, 300.0, 0.0, random.Random(1)))
    except Exception as exc:
        return fb.fail(f"fn(6, 5.0, 3.0, 300.0, 0.0, rng) raised {type(exc).__name__}: {exc}")
    want = [0.0, 5.0, 15.0, 45.0, 135.0, 300.0]
    if len(delays) != 6:
        return fb.fail(f"6 attempts need 6 delays (the first is 0), got {len(delays)}")
    if delays[0] != 0:
        fb.fail("the first attempt is immediate: delays[0] must be 0")
    for i, (got, exp) in enumerate(zip(delays, want, strict=True)):
        if abs(got - exp) > 1e-9:
            fb.fail(
                f"without jitter, delays[{i}] should be {exp:g} s "
                f"(base * factor**{i - 1}, at most cap), got {got!r}"
            )
            break
    if not fb.passed:
        return fb
    rng = random.Random(2)
    runs = [list(fn(6, 5.0, 3.0, 300.0, 0.2, rng)) for _ in range(200)]
    for run in runs:
        for i, (got, exp) in enumerate(zip(run, want, strict=True)):
            if not exp * 0.8 - 1e-9 <= got <= exp * 1.2 + 1e-9:
                return fb.fail(
                    f"with jitter 0.2, delay {i} must stay within ±20% of {exp:g} s, got {got:.3f}"
                )
    if len({round(r[2], 6) for r in runs}) < 50:
        return fb.fail(
            "with jitter 0.2 the delays barely vary: draw a fresh rng.uniform for each delay"
        )
    # The effect: 1,000 deliveries failed together at t=0 (a receiver outage).
    # When do their second retries land?
    herd = Counter(int(sum(fn(3, 5.0, 3.0, 300.0, 0.0, rng)[:3])) for _ in range(1000))
    spread = Counter(int(sum(fn(3, 5.0, 3.0, 300.0, 0.2, rng)[:3])) for _ in range(1000))
    fb.note(
        f"effect: 1,000 deliveries that failed together retry (2nd retry) in the same second "
        f"without jitter ({max(herd.values())} in the busiest second); with ±20% jitter "
        f"the busiest second gets {max(spread.values())}: "
        "the recovering receiver is not knocked over again"
    )
    total = sum(fn(8, 5.0, 3.0, 36000.0, 0.0, rng))
    fb.note(f"8 attempts with base 5 s, factor 3 keep trying for {total / 3600:.1f} h")
    return fb


def reference_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """What a correct signer produces (used in the notebook to compare by hand)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


URL_CASES = [  # (url, resolved addresses, must be refused)
    ("https://hooks.example.com/in", ["93.184.216.34"], False),
    ("http://hooks.example.com/in", ["93.184.216.34", "2606:2800:220:1::1946"], False),
    ("ftp://hooks.example.com/in", ["93.184.216.34"], True),
    ("http://user:pw@hooks.example.com/in", ["93.184.216.34"], True),
    ("http://10.0.0.5/admin", ["10.0.0.5"], True),
    ("http://169.254.169.254/latest/meta-data/", ["169.254.169.254"], True),
    ("http://localhost:8000/hook", ["127.0.0.1", "::1"], True),
    ("http://mixed.example.com/in", ["93.184.216.34", "192.168.1.1"], True),
    ("http://cgnat.example.com/in", ["100.64.0.7"], True),
    ("http://group.example.com/in", ["224.0.0.1"], True),
]


def check_url_refusal(fn: Callable[[str, list[str]], str | None]) -> Feedback:
    """In-depth exercise 2: ``fn(url, addresses)`` returns a reason to refuse
    (a string) or None when the provider may POST there."""
    fb = Feedback("Exercise 2: refuse dangerous URLs")
    for url, addresses, refuse in URL_CASES:
        try:
            reason = fn(url, list(addresses))
        except Exception as exc:
            fb.fail(f"{url} {addresses}: your function raised {type(exc).__name__}: {exc}")
            continue
        if refuse and not reason:
            fb.fail(f"{url} resolving to {addresses} must be refused")
        elif not refuse and reason:
            fb.fail(f"{url} resolving to {addresses} is public: refused with {reason!r}")
    if any("224.0.0.1" in m for m in fb.messages):
        fb.note("ipaddress counts multicast as is_global: check is_multicast too")
    if fb.passed:
        fb.note(
            "all 10 right; the provider also refuses 6to4/Teredo addresses that hide a private "
            "IPv4 (servers/webhooks/ssrf.py) and checks again at every delivery"
        )
    return fb
