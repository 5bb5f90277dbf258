"""Standard Webhooks v1 signatures: the official vector, interop with the
reference ``standardwebhooks`` package both ways, rotation, tolerance,
malformed input."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from servers.webhooks import signing

# The vector shared by the reference Python, Go and JavaScript libraries.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(msg_id=MSG_ID, ts=TIMESTAMP, sig=EXPECTED):
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def test_official_test_vector_sign():
    assert signing.sign(SECRET, MSG_ID, TIMESTAMP, BODY) == EXPECTED
    assert signing.sign_headers(SECRET, MSG_ID, BODY, TIMESTAMP) == headers()


def test_official_test_vector_verify():
    assert signing.verify(SECRET, headers(), BODY, now=TIMESTAMP) == MSG_ID


def test_reference_library_verifies_ours():
    secret = signing.generate_secret()
    body = b'{"type":"email.bounced","data":{"to":"a@example.com"}}'
    ours = signing.sign_headers(secret, "msg_ours", body)
    assert Webhook(secret).verify(body, ours) == {
        "type": "email.bounced",
        "data": {"to": "a@example.com"},
    }


def test_we_verify_the_reference_library():
    secret = signing.generate_secret()
    body = '{"type":"email.delivered"}'
    now = datetime.now(timezone.utc)  # aware: a naive datetime gives a wrong signature there
    sig = Webhook(secret).sign("msg_ref", now, body)
    hdrs = {
        "webhook-id": "msg_ref",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sig,
    }
    assert signing.verify(secret, hdrs, body.encode()) == "msg_ref"


def test_reference_library_agrees_on_the_vector():
    ts = datetime.fromtimestamp(TIMESTAMP, tz=timezone.utc)
    assert Webhook(SECRET).sign(MSG_ID, ts, BODY.decode()) == EXPECTED


def test_reference_trap_malformed_header_raises_valueerror_ours_a_verification_error():
    now = int(time.time())
    bad = headers(ts=now, sig="garbage-without-comma")
    with pytest.raises(ValueError) as info:
        Webhook(SECRET).verify(BODY, bad)
    assert not isinstance(info.value, WebhookVerificationError)  # the trap
    with pytest.raises(signing.MalformedHeaderError) as ours:
        signing.verify(SECRET, bad, BODY, now=now)
    assert ours.value.status == 400


def test_rotation_two_signatures_each_secret_verifies():
    old, new = signing.generate_secret(), signing.generate_secret()
    hdrs = signing.sign_headers([new, old], "msg_rot", BODY)
    assert len(hdrs["webhook-signature"].split(" ")) == 2
    assert signing.verify(old, hdrs, BODY) == "msg_rot"
    assert signing.verify(new, hdrs, BODY) == "msg_rot"
    assert Webhook(old).verify(BODY, hdrs) and Webhook(new).verify(BODY, hdrs)
    # and a receiver holding both secrets accepts a message signed by either
    assert signing.verify([old, new], signing.sign_headers(new, "m2", BODY), BODY) == "m2"
    with pytest.raises(signing.BadSignatureError):
        signing.verify(signing.generate_secret(), hdrs, BODY)


@pytest.mark.parametrize("offset", [-301, 301, -100_000])
def test_timestamp_outside_tolerance_both_ways(offset):
    hdrs = signing.sign_headers(SECRET, MSG_ID, BODY, TIMESTAMP + offset)
    with pytest.raises(signing.StaleTimestampError) as info:
        signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP)
    assert info.value.status == 401
    assert ("old" in info.value.reason) == (offset < 0)


@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_timestamp_inside_tolerance(offset):
    hdrs = signing.sign_headers(SECRET, MSG_ID, BODY, TIMESTAMP + offset)
    assert signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP) == MSG_ID


def test_tampered_body_and_id_are_refused():
    with pytest.raises(signing.BadSignatureError):
        signing.verify(SECRET, headers(), b'{"test": 2432232315}', now=TIMESTAMP)
    with pytest.raises(signing.BadSignatureError):
        signing.verify(SECRET, headers(msg_id="msg_other"), BODY, now=TIMESTAMP)
    # re-serialised JSON (other spacing) is different bytes: verify the raw body
    with pytest.raises(signing.BadSignatureError):
        signing.verify(SECRET, headers(), b'{"test":2432232314}', now=TIMESTAMP)


@pytest.mark.parametrize(
    "hdrs, error",
    [
        ({}, signing.MissingHeaderError),
        ({"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP)}, signing.MissingHeaderError),
        (headers(ts="soon"), signing.MalformedHeaderError),
        (headers(ts="1614265330.5"), signing.MalformedHeaderError),
        (headers(sig="v1,not*base64!"), signing.MalformedHeaderError),
        (headers(sig="v2,abc="), signing.MalformedHeaderError),  # no v1 entry at all
        (headers(sig=""), signing.MissingHeaderError),
    ],
)
def test_malformed_headers_are_400(hdrs, error):
    with pytest.raises(error) as info:
        signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP)
    assert info.value.status == 400 and info.value.reason


def test_unknown_versions_are_skipped_when_a_v1_matches():
    assert signing.verify(SECRET, headers(sig="v1a,xyz " + EXPECTED), BODY, now=TIMESTAMP)


def test_header_names_are_case_insensitive():
    hdrs = {k.upper(): v for k, v in headers().items()}
    assert signing.verify(SECRET, hdrs, BODY, now=TIMESTAMP) == MSG_ID


def test_compare_is_constant_time(monkeypatch):
    calls = []
    real = signing.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    signing.verify(SECRET, headers(), BODY, now=TIMESTAMP)
    assert calls, "signatures must be compared with hmac.compare_digest"


def test_secrets():
    s = signing.generate_secret()
    assert s.startswith("whsec_") and len(signing.decode_secret(s)) == 32
    with pytest.raises(ValueError, match="24 to 64"):
        signing.decode_secret("whsec_" + base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="base64"):
        signing.decode_secret("whsec_%%%")
    with pytest.raises(ValueError):
        signing.generate_secret(8)


@pytest.mark.parametrize("ts", ["²", "1614265330²", "٣", "9" * 400, "1" * 5000, "1e9"])
def test_timestamp_is_ascii_digits_of_sane_length(ts):
    # "²".isdigit() is True and int("²") raises; "9" * 400 overflows float().
    hdrs = {**signing.sign_headers(SECRET, "msg_1", b"{}"), "webhook-timestamp": ts}
    with pytest.raises(signing.MalformedHeaderError, match="webhook-timestamp") as info:
        signing.verify(SECRET, hdrs, b"{}")
    assert info.value.status == 400
