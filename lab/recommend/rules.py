"""The decision rules: the questions (``Needs``), ``RULES``, ``CAVEATS``, ``recommend()``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .evidence import (
    CH_BYTES,
    CH_RATE,
    SC_CONNECTIONS,
    SC_SCALEOUT,
    ST_BUFFERING,
    ST_FEED,
    ST_RESUME,
    ST_WIRE,
    TRANSPORTS,
    WH_DEAD,
    WH_OUTBOX,
    WH_REGISTER,
    WH_RETRIES,
    WH_WIRE,
    WS_MEASURED,
    WS_MOBILE,
    WS_RESUME,
    WS_ROOM,
    WS_TLS,
    Evidence,
)

# Sustained events per second above which we prefer one open stream to one
# HTTP request per event (webhooks). The harness measured webhooks at about
# 3x the bytes and 2-3x the server CPU per event of a stream
# (benchmarks/results/choosing.json) at every rate; *where* that starts to
# matter is a judgement call, not a measured break-even: at 10 events/s a
# receiver answers 864,000 POSTs a day.
HIGH_RATE_EPS = 10.0


# -- the questions ---------------------------------------------------------------
@dataclass(frozen=True)
class Needs:
    """The recommender's questions, with the widget's defaults."""

    consumer: str = "browser"  # who receives the events: "server" or "browser"
    consumer_sends: bool = False  # does the consumer also send, on the same channel?
    must_survive_offline: bool = False  # must events wait while the consumer is offline?
    events_per_second: float = 1.0  # sustained event rate per consumer
    mobile: bool = False  # are (some) consumers phones on mobile networks?
    behind_proxies: bool = False  # are there buffering proxies / strict firewalls in between?

    def __post_init__(self) -> None:
        if self.consumer not in ("server", "browser"):
            raise ValueError(f"consumer is 'server' or 'browser', not {self.consumer!r}")
        if not self.events_per_second >= 0:
            raise ValueError("events_per_second must be a number >= 0")

    @property
    def high_rate(self) -> bool:
        return self.events_per_second > HIGH_RATE_EPS


@dataclass(frozen=True)
class Rule:
    name: str
    when: Callable[[Needs], bool]
    transport: str
    reason: str
    evidence: tuple[Evidence, ...]


# First match wins. Read it as a decision list: the order *is* the logic.
RULES: tuple[Rule, ...] = (
    Rule(
        "server consumer, events must survive it being offline",
        lambda n: n.consumer == "server" and n.must_survive_offline,
        "webhooks",
        "The provider keeps each event in a durable outbox and retries with backoff until the "
        "receiver answers 2xx, so a receiver that is down for a while loses nothing, and "
        "dead letters can be replayed. A stream or a socket only carries what happens while it "
        "is connected (plus a bounded replay buffer). What the consumer sends back are plain "
        "API requests.",
        (WH_RETRIES, WH_OUTBOX, WH_DEAD),
    ),
    Rule(
        "the consumer also sends (two-way, interactive)",
        lambda n: n.consumer_sends,
        "websocket",
        "One connection carries both directions: each message is a frame with 2-14 bytes of "
        "header instead of a new HTTP request, so round trips stay short (chat, online games, "
        "collaboration). Resume after a drop with the last sequence number.",
        (WS_ROOM, WS_MEASURED, WS_RESUME),
    ),
    Rule(
        "a server consumer at a high event rate",
        lambda n: n.consumer == "server" and n.high_rate and not n.behind_proxies,
        "ndjson",
        f"Above about {HIGH_RATE_EPS:g} events/s a request per event (webhooks) costs more bytes "
        "and server CPU than one open response; chunked NDJSON is the leanest stream a server "
        "can read with any HTTP library, and resumes from the last seq.",
        (CH_BYTES, ST_FEED, ST_WIRE),
    ),
    Rule(
        "a server consumer at a low event rate",
        lambda n: n.consumer == "server" and not n.high_rate,
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


@dataclass(frozen=True)
class Caveat:
    name: str
    when: Callable[[Needs, str], bool]
    text: str
    evidence: tuple[Evidence, ...]


CAVEATS: tuple[Caveat, ...] = (
    Caveat(
        "mobile + a long-lived connection",
        lambda n, t: n.mobile and t in ("websocket", "sse", "ndjson"),
        "On phones, radio wake-ups cost battery more than bytes: do not keep an idle "
        "connection alive with frequent pings; close when idle and resume with the last seq "
        "when the app needs updates again.",
        (WS_MOBILE, WS_RESUME),
    ),
    Caveat(
        "browser consumer that may be offline",
        lambda n, t: n.consumer == "browser" and n.must_survive_offline,
        "A browser cannot receive webhooks. Resume only reaches back as far as the server's "
        "replay buffer: size it for the longest absence you promise, and handle the explicit "
        "resync notice (reload state) when a client was away longer.",
        (ST_RESUME, WS_RESUME),
    ),
    Caveat(
        "two-way through proxies and firewalls",
        lambda n, t: t == "websocket" and n.behind_proxies,
        "Some corporate proxies strip the Upgrade header or cut long-lived connections: use "
        "wss:// (TLS hides the upgrade from middleboxes) and keep a fallback of SSE downstream "
        "plus plain POSTs upstream.",
        (WS_TLS, ST_BUFFERING),
    ),
    Caveat(
        "high-rate server consumer behind proxies",
        lambda n, t: n.consumer == "server" and n.high_rate and n.behind_proxies and t == "sse",
        "A buffering proxy holds a chunked NDJSON response until it ends. SSE fares better "
        "only where the proxy treats text/event-stream as a stream (jupyter-server-proxy "
        "does; nginx needs X-Accel-Buffering: no; many corporate proxies buffer it too): "
        "test through your proxy, and keep a polling fallback.",
        (ST_BUFFERING,),
    ),
    Caveat(
        "webhooks at a high rate",
        lambda n, t: t == "webhooks" and n.high_rate,
        "Every event is its own signed POST: at high rates batch events per delivery, or "
        "let the consumer also pull a stream, and watch the provider's outbox.",
        (CH_BYTES, CH_RATE),
    ),
    Caveat(
        "many browser connections",
        lambda n, t: n.consumer == "browser" and t in ("websocket", "sse"),
        "Each open client holds a connection (memory and a file descriptor) on the server; "
        "beyond one process, fan out through a backplane such as Redis pub/sub.",
        (SC_CONNECTIONS, SC_SCALEOUT),
    ),
)


@dataclass
class Recommendation:
    transport: str
    rule: str
    reasons: list[str]
    evidence: list[Evidence]
    caveats: list[str] = field(default_factory=list)
    caveat_evidence: list[Evidence] = field(default_factory=list)

    @property
    def label(self) -> str:
        return TRANSPORTS[self.transport]

    def markdown(self) -> str:
        lines = [f"**Use {self.label}** (rule: {self.rule}).", "", "Why:"]
        lines += [f"- {r}" for r in self.reasons]
        lines.append("- Shown live in: " + ", ".join(e.markdown() for e in self.evidence))
        if self.caveats:
            lines += ["", "Watch out:"]
            lines += [f"- {c}" for c in self.caveats]
            lines.append(
                "- Shown live in: " + ", ".join(e.markdown() for e in self.caveat_evidence)
            )
        return "\n".join(lines)


def recommend(needs: Needs) -> Recommendation:
    """The first rule that matches ``needs``, with its reasons, evidence and caveats."""
    for rule in RULES:
        if rule.when(needs):
            break
    else:  # pragma: no cover - the last rule always matches
        raise AssertionError("no rule matched")
    rec = Recommendation(rule.transport, rule.name, [rule.reason], list(rule.evidence))
    for caveat in CAVEATS:
        if caveat.when(needs, rule.transport):
            rec.caveats.append(caveat.text)
            rec.caveat_evidence += [e for e in caveat.evidence if e not in rec.caveat_evidence]
    return rec
