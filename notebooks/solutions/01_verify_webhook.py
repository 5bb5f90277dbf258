import base64
import hashlib
import hmac


def verify_webhook(secret, headers, body, now):
    """True if ``body`` with ``headers`` is an authentic delivery, fresh enough."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and timestamp.isdigit() and signatures):
        return False
    if abs(now - int(timestamp)) > 5 * 60:  # too old (a replay) or too far in the future
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body  # the raw bytes, never re-serialised
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for entry in signatures.split(" "):  # several entries during a key rotation
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False
