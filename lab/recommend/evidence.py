"""Where each claim was shown live: ``Evidence`` links to notebook sections.

Every rule, caveat and matrix cell of the recommender cites the heading of
the notebook section that demonstrated it; ``notebook_headings`` reads a
notebook's headings so ``matrix.broken_evidence`` can check every link.
What this collection does not demonstrate is cited as a ``Source`` (a URL or
a spec section) and labelled "stated, not shown here".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

TRANSPORTS = {
    "short_polling": "short polling",
    "long_polling": "long polling",
    "webhooks": "webhooks",
    "websocket": "WebSocket",
    "ndjson": "chunked NDJSON",
    "sse": "SSE",
}
# Answers that are none of the transports above (the recommender says why).
ANSWERS = {
    **TRANSPORTS,
    "push_service": "a platform push service (APNs, FCM, Web Push)",
    "http_posts": "plain HTTP POSTs from the consumer",
}


@dataclass(frozen=True)
class Evidence:
    """A notebook section that demonstrated something live."""

    notebook: str  # file name, e.g. "01_webhooks.ipynb"
    heading: str  # the heading's text, exactly as in the notebook

    @property
    def anchor(self) -> str:
        # JupyterLab gives each rendered heading the id "text with spaces as -".
        return self.heading.replace(" ", "-")

    @property
    def href(self) -> str:
        return f"{self.notebook}#{self.anchor}"

    shown = True  # demonstrated live in that section

    def markdown(self, text: str | None = None) -> str:
        label = text or f"{self.notebook[:2]}: {self.heading}"
        return f"[{label}]({self.href})"


@dataclass(frozen=True)
class Source:
    """A claim stated, not shown here: where it comes from (a URL, a spec section)."""

    label: str  # e.g. "RFC 8030 (Web Push)"
    href: str  # the URL

    shown = False

    def markdown(self, text: str | None = None) -> str:
        if text is None:
            return f"[{self.label}]({self.href}) (stated, not shown here)"
        return f"{text}; *stated, not shown here:* [{self.label}]({self.href})"


def E(notebook: str, heading: str) -> Evidence:
    return Evidence(notebook, heading)


NB00, NB01, NB02 = "00_start_here.ipynb", "01_webhooks.ipynb", "02_websockets.ipynb"
NB03, NB04, NB05 = "03_http_streaming.ipynb", "04_scaling.ipynb", "05_choosing.ipynb"
# The in-depth companions (self-study) of the core notebooks above.
NB01D, NB02D = "01_webhooks_in_depth.ipynb", "02_websockets_in_depth.ipynb"
NB03D, NB05D = "03_http_streaming_in_depth.ipynb", "05_choosing_in_depth.ipynb"
NB06 = "06_network_weather.ipynb"  # self-study, after the decision notebook

# The sections of this collection that the rules and the matrix cite.
POLL_SIDE_BY_SIDE = E(NB00, "Polling and push, side by side")
POLL_COST = E(NB00, "Measuring what polling costs")
POLL_DROP = E(NB00, "When the connection drops")
WH_REGISTER = E(NB01, "Register a URL, receive a POST")
WH_WIRE = E(NB01, "Signed deliveries on the wire")
WH_ATTACKS = E(NB01D, "Attacks: forged, replayed, duplicated")
WH_RETRIES = E(NB01, "When the receiver fails: retries, backoff and jitter")
WH_DEAD = E(NB01D, "Dead letters, Retry-After and 410")
WH_OUTBOX = E(NB01, "The durable outbox: a provider restart loses nothing")
WH_SSRF = E(NB01D, "Registration safety (SSRF)")
WH_CHOOSE = E(NB01D, "When to choose webhooks, and when not")
WS_ROOM = E(NB02, "A live room")
WS_WIRE = E(NB02D, "The protocol on the wire")
WS_GUARD = E(NB02, "Guarding the door")
WS_SLOW = E(NB02D, "Slow consumers and silent peers")
WS_RESUME = E(NB02, "Reconnect and resume")
WS_TLS = E(NB02D, "TLS: wss://")
WS_MEASURED = E(NB02D, "Measured: frames against requests")
WS_MOBILE = E(NB02D, "The mobile lesson: keepalive pings or close when idle?")
ST_FEED = E(NB03, "A live feed, two ways")
ST_WIRE = E(NB03, "On the wire")
ST_RESUME = E(NB03, "Resume with Last-Event-ID")
ST_HEARTBEAT = E(NB03D, "Heartbeats and the watchdog")
ST_BUFFERING = E(NB03, "The buffering trap, measured")
ST_SECURE = E(NB03D, "Securing a stream")
SC_CONNECTIONS = E(NB04, "One process, N connections")
SC_FANOUT = E(NB04, "Fan-out cost against N")
SC_SCALEOUT = E(NB04, "Scale-out across processes")
SC_FAILOVER = E(NB04, "Failover and graceful draining")
CH_LATENCY = E(NB05, "Latency side by side")
CH_BYTES = E(NB05, "Bytes on the wire per event")
CH_RATE = E(NB05D, "Cost as the event rate grows")
CH_POLLING = E(NB05D, "Polling through a proxy, an outage and a token")
WE_RTT = E(NB06, "Polling pays the round trip")
WE_NAT = E(NB06, "A NAT forgets silently")
WE_HEARTBEATS = E(NB06, "Heartbeats and watchdogs")
WE_PROXY = E(NB06, "Corporate proxy: buffering defeats streaming")
WE_COST = E(NB06, "What heartbeats cost")

# What this collection does not demonstrate: the source that states it.
PUSH_WEB = Source("RFC 8030 (Web Push)", "https://www.rfc-editor.org/rfc/rfc8030")
PUSH_APNS = Source(
    "Apple: User Notifications (APNs)",
    "https://developer.apple.com/documentation/usernotifications",
)
PUSH_FCM = Source("Firebase Cloud Messaging", "https://firebase.google.com/docs/cloud-messaging")
HTTP_POST = Source("RFC 9110 §9.3.3 (POST)", "https://www.rfc-editor.org/rfc/rfc9110#section-9.3.3")
HTTP_AUTH = Source(
    "RFC 9110 §11 (HTTP authentication)", "https://www.rfc-editor.org/rfc/rfc9110#section-11"
)
CHUNKED = Source("RFC 9112 §7.1 (chunked)", "https://www.rfc-editor.org/rfc/rfc9112#section-7.1")
FETCH = Source("MDN: Fetch API", "https://developer.mozilla.org/en-US/docs/Web/API/Fetch_API")
PUSH_API = Source("MDN: Push API", "https://developer.mozilla.org/en-US/docs/Web/API/Push_API")
STRIPE_WEBHOOKS = Source("Stripe: webhook endpoints", "https://docs.stripe.com/webhooks")
NGINX_WS = Source("nginx: WebSocket proxying", "https://nginx.org/en/docs/http/websocket.html")
SSE_CREDENTIALS = Source(
    "WHATWG HTML: the EventSource interface",
    "https://html.spec.whatwg.org/multipage/server-sent-events.html#the-eventsource-interface",
)
ANDROID_RADIO = Source(
    "Android: preserving battery (the radio state machine)",
    "https://developer.android.com/develop/connectivity/preserving-battery",
)


def notebook_headings(notebook: str) -> set[str]:
    """The heading texts of a notebook (any level), for checking evidence links."""
    doc = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))
    found = set()
    for cell in doc["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for line in source.splitlines():
            if line.startswith("#"):
                found.add(line.lstrip("#").strip())
    return found
