"""The decision rules: the questions (``Needs``), ``RULES`` and ``recommend()``.

The warnings added after a rule has picked live in ``caveats.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .caveats import CAVEATS
from .evidence import (
    ANSWERS,
    CH_BYTES,
    CH_RATE,
    HTTP_POST,
    POLL_DROP,
    POLL_SIDE_BY_SIDE,
    PUSH_APNS,
    PUSH_FCM,
    PUSH_WEB,
    ST_BUFFERING,
    ST_FEED,
    ST_RESUME,
    ST_WIRE,
    WH_OUTBOX,
    WH_REGISTER,
    WH_RETRIES,
    WH_WIRE,
    WS_MEASURED,
    WS_RESUME,
    WS_ROOM,
    Evidence,
    Source,
)

# Sustained events per second above which we prefer one open stream to one
# HTTP request per event (webhooks). The harness measured webhooks at about
# 3x the bytes and 2-3x the server CPU per event of a stream
# (benchmarks/results/choosing.json) at every rate; *where* that starts to
# matter is a judgement call, not a measured break-even: at 10 events/s a
# receiver answers 864,000 POSTs a day.
HIGH_RATE_EPS = 10.0
# Below this (one event in 100 s) events are "rare": a consumer that must
# pull them can poll every minute or so and hold nothing open. Also a
# judgement call; the cost of polling against the rate is measured in 05 in depth.
RARE_EPS = 0.01
DIRECTIONS = {
    "to_consumer": "server → consumer",
    "from_consumer": "consumer → server",
    "both": "both ways",
}


# -- the questions ---------------------------------------------------------------
@dataclass(frozen=True)
class Needs:
    """The recommender's questions, with the widget's defaults."""

    consumer: str = "browser"  # who receives the events: "server" or "browser" (or an app)
    direction: str = "to_consumer"  # main traffic: "to_consumer", "from_consumer" or "both"
    must_survive_offline: bool = False  # must events wait while the consumer is offline?
    events_per_second: float = 1.0  # sustained event rate per consumer
    mobile: bool = False  # are (some) consumers phones on mobile networks?
    behind_proxies: bool = False  # are there buffering proxies / strict firewalls in between?
    reachable: bool = True  # can a server consumer be reached at a public URL (inbound)?
    may_be_closed: bool = False  # may the consumer be closed / suspended when it must be told?

    def __post_init__(self) -> None:
        if self.consumer not in ("server", "browser"):
            raise ValueError(f"consumer is 'server' or 'browser', not {self.consumer!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction is one of {list(DIRECTIONS)}, not {self.direction!r}")
        if not self.events_per_second >= 0:
            raise ValueError("events_per_second must be a number >= 0")

    @property
    def high_rate(self) -> bool:
        return self.events_per_second > HIGH_RATE_EPS

    @property
    def rare(self) -> bool:
        return self.events_per_second < RARE_EPS

    @property
    def accepts_posts(self) -> bool:
        """Can anyone POST to the consumer? Browsers and apps have no URL."""
        return self.consumer == "server" and self.reachable

    @property
    def must_wait_for_it(self) -> bool:
        """Must events wait for the consumer? A server that may be closed when
        it must be told is a server that is offline then."""
        return self.must_survive_offline or (self.consumer == "server" and self.may_be_closed)

    @property
    def closed_app(self) -> bool:
        """A browser tab or app that may be closed when it must be told."""
        return self.consumer == "browser" and self.may_be_closed


@dataclass(frozen=True)
class Rule:
    name: str
    when: Callable[[Needs], bool]
    transport: str  # a key of ANSWERS: one of the transports, or none of them
    reason: str
    evidence: tuple[Evidence | Source, ...]


# First match wins. Read it as a decision list: the order *is* the logic.
RULES: tuple[Rule, ...] = (
    Rule(
        "most traffic goes from the consumer to the server",
        lambda n: n.direction == "from_consumer",
        "http_posts",
        "Devices reporting readings need none of the push transports: each reading (or a "
        "batch of them) is a plain HTTP POST answered 2xx, retried with the same id when "
        "no answer comes, and the answer can carry anything the server has to say back. "
        "Nothing is held open between readings. The same mechanism as a webhook delivery, "
        "the other way round.",
        (WH_REGISTER, CH_BYTES, HTTP_POST),
    ),
    Rule(
        "a browser or app that may be closed when it must be told",
        lambda n: n.closed_app,
        "push_service",
        "A closed tab or a suspended app holds no connection and has no URL, so none of the "
        "three transports can reach it. Only the platform's push service can wake it: APNs "
        "on iOS, FCM on Android, Web Push (a service worker) in browsers. Send a small nudge "
        "through it and let the app fetch the details when it opens.",
        (PUSH_APNS, PUSH_FCM, PUSH_WEB),
    ),
    Rule(
        "server consumer, events must survive it being offline",
        lambda n: n.accepts_posts and n.must_wait_for_it,
        "webhooks",
        "The provider keeps each event in a durable outbox and retries with backoff until the "
        "receiver answers 2xx, so a receiver that is down for a while loses nothing, and "
        "dead letters can be replayed. A stream or a socket only carries what happens while it "
        "is connected (plus a bounded replay buffer). What the consumer sends back are plain "
        "API requests.",
        (WH_RETRIES, WH_OUTBOX, WH_WIRE),
    ),
    Rule(
        "the consumer also sends (two-way, interactive)",
        lambda n: n.direction == "both",
        "websocket",
        "One connection carries both directions: each message is a frame with 2-14 bytes of "
        "header instead of a new HTTP request, so round trips stay short (chat, online games, "
        "collaboration). The consumer dials out, so it works from behind NAT too. Resume "
        "after a drop with the last sequence number.",
        (WS_ROOM, WS_MEASURED, WS_RESUME),
    ),
    Rule(
        "a server nobody can reach, rare events",
        lambda n: n.consumer == "server" and not n.reachable and n.rare,
        "short_polling",
        "Behind NAT or a closed firewall no webhook can arrive. For events that come a few "
        "times an hour and may wait a minute, the simplest answer is a poll every minute or "
        "so asking for what came after the last seq: nothing held open, nothing to reconnect, "
        "and a missed poll loses nothing. Most polls come back empty; if events must arrive "
        "within seconds, hold an outbound stream instead.",
        (POLL_SIDE_BY_SIDE, POLL_DROP, CH_RATE),
    ),
    Rule(
        "a server consumer at a high event rate, or one nobody can reach",
        lambda n: (
            n.consumer == "server" and (n.high_rate or not n.reachable) and not n.behind_proxies
        ),
        "ndjson",
        "The consumer opens one response and reads events as they come: no request per event, "
        "and since the consumer dials out it works from behind NAT. Chunked NDJSON is the "
        f"leanest stream a server can read with any HTTP library (above about {HIGH_RATE_EPS:g} "
        "events/s a POST per event costs more bytes and CPU), and it resumes from the last seq.",
        (CH_BYTES, ST_FEED, ST_WIRE),
    ),
    Rule(
        "a server consumer at a low event rate",
        lambda n: n.accepts_posts and not n.high_rate,
        "webhooks",
        "Occasional events to another server: nobody has to hold a connection open; the "
        "provider POSTs when something happens, signed, and retries on failure.",
        (WH_REGISTER, WH_WIRE, WH_RETRIES),
    ),
    Rule(
        "one-way to a browser, and everything else",
        lambda n: True,
        "sse",
        "Built into every browser (EventSource), reconnects by itself and resumes with "
        "Last-Event-ID. Through proxies it is not a sure thing: it passed jupyter-server-proxy "
        "because the browser sends Accept: text/event-stream, nginx buffers it unless the "
        "response carries X-Accel-Buffering: no, and many corporate proxies buffer it too.",
        (ST_FEED, ST_RESUME, ST_BUFFERING),
    ),
)


@dataclass
class Recommendation:
    transport: str
    rule: str
    reasons: list[str]
    evidence: list[Evidence | Source]
    caveats: list[str] = field(default_factory=list)
    caveat_evidence: list[Evidence | Source] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ANSWERS[self.transport]

    def markdown(self) -> str:
        lines = [f"**Use {self.label}** (rule: {self.rule}).", "", "Why:"]
        lines += [f"- {r}" for r in self.reasons]
        lines.append("- Evidence: " + ", ".join(e.markdown() for e in self.evidence))
        if self.caveats:
            lines += ["", "Watch out:"]
            lines += [f"- {c}" for c in self.caveats]
            lines.append("- Evidence: " + ", ".join(e.markdown() for e in self.caveat_evidence))
        return "\n".join(lines)


def recommend(needs: Needs) -> Recommendation:
    """The first rule that matches ``needs``, with its reasons, evidence and caveats."""
    for rule in RULES:
        if rule.when(needs):
            break
    else:  # pragma: no cover - the last rule always matches
        raise AssertionError("no rule matched")
    rec = Recommendation(rule.transport, rule.name, [rule.reason], list(rule.evidence))
    if rule.transport == "push_service":  # and while the app is open?
        open_app = recommend(replace(needs, may_be_closed=False))
        rec.reasons.append(
            f"While it is open: {open_app.label} (rule: {open_app.rule}), resuming from the "
            "last seq it saw."
        )
        rec.evidence += [e for e in open_app.evidence if e not in rec.evidence]
        rec.caveats += open_app.caveats  # they hold while it is open
        rec.caveat_evidence += open_app.caveat_evidence
    for caveat in CAVEATS:
        if caveat.when(needs, rule.transport) and caveat.text not in rec.caveats:
            rec.caveats.append(caveat.text)
            rec.caveat_evidence += [e for e in caveat.evidence if e not in rec.caveat_evidence]
    return rec
