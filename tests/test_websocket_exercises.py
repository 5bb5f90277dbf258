"""Notebook 02's checkers accept the reference answers and reject typical
wrong ones with a specific message."""

from __future__ import annotations

import base64
import hashlib

from lab.exercises import load_solution
from lab.exercises.websockets import (
    GUID,
    check_accept,
    check_backoff,
    check_decode_header,
    stampede,
)


def test_accept_checker():
    assert check_accept(load_solution("02_accept_value")["sec_websocket_accept"])
    wrong = {
        "hex digest": lambda k: hashlib.sha1((k + GUID).encode()).hexdigest(),
        "GUID is missing": lambda k: base64.b64encode(hashlib.sha1(k.encode()).digest()).decode(),
        "SHA-1": lambda k: base64.b64encode(hashlib.sha256((k + GUID).encode()).digest()).decode(),
        "not bytes": lambda k: base64.b64encode(hashlib.sha1((k + GUID).encode()).digest()),
        "hard-coded": lambda k: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        "raised": lambda k: 1 / 0,
    }
    for fragment, fn in wrong.items():
        feedback = check_accept(fn)
        assert not feedback and fragment in str(feedback), (fragment, str(feedback))


def test_accept_checker_compares_with_a_live_handshake():
    fn = load_solution("02_accept_value")["sec_websocket_accept"]
    assert check_accept(
        fn, live_handshake=("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    )
    assert not check_accept(fn, live_handshake=("dGhlIHNhbXBsZSBub25jZQ==", "nope"))


def test_decode_header_checker():
    reference = load_solution("02_decode_header")["decode_header"]
    assert check_decode_header(reference)
    no_extended = lambda d: {**reference(d), "length": d[1] & 0x7F}  # noqa: E731
    feedback = check_decode_header(no_extended)
    assert not feedback and "126 means a 16-bit length" in str(feedback)
    fin_always = lambda d: {**reference(d), "fin": True}  # noqa: E731
    assert "FIN is the top bit" in str(check_decode_header(fin_always))
    assert "return a dict" in str(check_decode_header(lambda d: None))


def test_backoff_checker():
    reference = load_solution("02_backoff")["reconnect_delay"]
    assert check_backoff(reference)
    cases = {
        "no jitter": lambda a, rng: min(30.0, 2.0**a),
        "exponentially": lambda a, rng: rng.uniform(0, 1.0),
        "cap the delay": lambda a, rng: rng.uniform(0, 2.0**a),
        "bunch up": lambda a, rng: rng.uniform(0, min(30, 0.05 * 2**a)),
        "negative": lambda a, rng: -1.0,
    }
    for fragment, fn in cases.items():
        feedback = check_backoff(fn)
        assert not feedback and fragment in str(feedback), (fragment, str(feedback))
    assert stampede(lambda a, rng: 1.0) == 1000 and stampede(reference) < 250


def test_door_checker_accepts_an_exact_allowlist_and_rejects_the_usual_mistakes():
    from tornado.websocket import WebSocketHandler

    from lab.exercises.websockets import check_door

    assert check_door(load_solution("02_exact_origin")["ExactOrigin"])

    def door(rule):
        return type("Door", (WebSocketHandler,), {"check_origin": lambda self, o: rule(self, o)})

    wrong = {
        "allowed page itself": lambda self, o: WebSocketHandler.check_origin(self, o),  # default
        "any other site": lambda self, o: True,  # the forum answer
        "prefix test": lambda self, o: o.startswith("https://lab.example"),
        "suffix test": lambda self, o: o.endswith("lab.example"),
        "the scheme": lambda self, o: o.split("://")[-1] == "lab.example",
        "raised": lambda self, o: 1 / 0,
    }
    for fragment, rule in wrong.items():
        feedback = check_door(door(rule))
        assert not feedback and fragment in str(feedback), (fragment, str(feedback))
    assert "subclass" in str(check_door(object))
