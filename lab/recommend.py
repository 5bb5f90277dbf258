"""Which transport? Plain decision rules, each with its reason and its evidence.

The rules are a table (``RULES``), read top to bottom: the first rule whose
conditions all hold picks the transport. Then every matching row of
``CAVEATS`` adds a warning. Each reason points at the notebook section that
*showed* it live (``Evidence``), so a recommendation is never just an
opinion::

    >>> from lab.recommend import Needs, recommend
    >>> rec = recommend(Needs(consumer="server", must_survive_offline=True))
    >>> rec.transport
    'webhooks'

``FEATURES`` is the decision notebook's feature matrix (one row per
property, one column per transport), each cell with its evidence too;
``tests/test_recommend.py`` checks every evidence link points at a heading
that exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

TRANSPORTS = {
    "short_polling": "short polling",
    "long_polling": "long polling",
    "webhooks": "webhooks",
    "websocket": "WebSocket",
    "ndjson": "chunked NDJSON",
    "sse": "SSE",
}

# Sustained events per second above which we prefer one open stream to one
# HTTP request per event (webhooks). The harness measured webhooks at about
# 3x the bytes and 2-3x the server CPU per event of a stream
# (benchmarks/results/choosing.json) at every rate; *where* that starts to
# matter is a judgement call, not a measured break-even: at 10 events/s a
# receiver answers 864,000 POSTs a day.
HIGH_RATE_EPS = 10.0


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

    def markdown(self, text: str | None = None) -> str:
        label = text or f"{self.notebook[:2]}: {self.heading}"
        return f"[{label}]({self.href})"


def E(notebook: str, heading: str) -> Evidence:
    return Evidence(notebook, heading)


NB00, NB01, NB02 = "00_start_here.ipynb", "01_webhooks.ipynb", "02_websockets.ipynb"
NB03, NB04, NB05 = "03_http_streaming.ipynb", "04_scaling.ipynb", "05_choosing.ipynb"

# The sections of this collection that the rules and the matrix cite.
POLL_SIDE_BY_SIDE = E(NB00, "Polling and push, side by side")
POLL_COST = E(NB00, "Measuring what polling costs")
POLL_DROP = E(NB00, "When the connection drops")
WH_REGISTER = E(NB01, "Register a URL, receive a POST")
WH_WIRE = E(NB01, "Signed deliveries on the wire")
WH_ATTACKS = E(NB01, "Attacks: forged, replayed, duplicated")
WH_RETRIES = E(NB01, "When the receiver fails: retries, backoff and jitter")
WH_DEAD = E(NB01, "Dead letters, Retry-After and 410")
WH_OUTBOX = E(NB01, "The durable outbox: a provider restart loses nothing")
WH_SSRF = E(NB01, "Registration safety (SSRF)")
WH_CHOOSE = E(NB01, "When to choose webhooks, and when not")
WS_ROOM = E(NB02, "A live room")
WS_WIRE = E(NB02, "The protocol on the wire")
WS_GUARD = E(NB02, "Guarding the door")
WS_SLOW = E(NB02, "Slow consumers and silent peers")
WS_RESUME = E(NB02, "Reconnect and resume")
WS_TLS = E(NB02, "TLS: wss://")
WS_MEASURED = E(NB02, "Measured: frames against requests")
WS_MOBILE = E(NB02, "The mobile lesson: keepalive pings or close when idle?")
ST_FEED = E(NB03, "A live feed, two ways")
ST_WIRE = E(NB03, "On the wire")
ST_RESUME = E(NB03, "Resume with Last-Event-ID")
ST_HEARTBEAT = E(NB03, "Heartbeats and the watchdog")
ST_BUFFERING = E(NB03, "The buffering trap, measured")
ST_SECURE = E(NB03, "Securing a stream")
SC_CONNECTIONS = E(NB04, "One process, N connections")
SC_FANOUT = E(NB04, "Fan-out cost against N")
SC_SCALEOUT = E(NB04, "Scale-out across processes")
SC_FAILOVER = E(NB04, "Failover and graceful draining")
CH_LATENCY = E(NB05, "Latency side by side")
CH_BYTES = E(NB05, "Bytes on the wire per event")
CH_RATE = E(NB05, "Cost as the event rate grows")


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
        "one-way to a browser, or through buffering proxies",
        lambda n: True,
        "sse",
        "Built into every browser (EventSource), reconnects by itself and resumes with "
        "Last-Event-ID; proxies that buffer ordinary responses pass text/event-stream "
        "through live (jupyter-server-proxy does, nginx with X-Accel-Buffering: no).",
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
        "A buffering proxy holds a chunked NDJSON response until it ends; SSE's "
        "text/event-stream is passed through live, so it is the safer stream here.",
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


# -- the feature matrix ------------------------------------------------------------
# property -> transport -> (what was shown, where). Short cells: the linked
# section has the detail.
_ORDER = tuple(TRANSPORTS)


def _row(*cells: tuple[str, Evidence]) -> dict[str, tuple[str, Evidence]]:
    return dict(zip(_ORDER, cells, strict=True))


FEATURES: dict[str, dict[str, tuple[str, Evidence]]] = {
    "Direction": _row(
        ("server → client, client asks", POLL_SIDE_BY_SIDE),
        ("server → client, client asks", POLL_SIDE_BY_SIDE),
        ("provider → your server", WH_REGISTER),
        ("both ways, one connection", WS_ROOM),
        ("server → client", ST_FEED),
        ("server → client", ST_FEED),
    ),
    "Works from a browser": _row(
        ("yes (fetch)", POLL_SIDE_BY_SIDE),
        ("yes (fetch)", POLL_SIDE_BY_SIDE),
        ("no: a browser has no URL to POST to", WH_CHOOSE),
        ("yes (WebSocket API)", WS_GUARD),
        ("yes (fetch + reader), but proxies buffer it", ST_BUFFERING),
        ("yes (EventSource, built in)", ST_FEED),
    ),
    "Behind a buffering proxy": _row(
        ("works: each answer is already complete", ST_BUFFERING),
        ("works: a held answer is still one complete response", ST_BUFFERING),
        ("POSTs pass; the receiver must be reachable (no NAT)", WH_CHOOSE),
        ("works where Upgrade is proxied (jupyter-server-proxy does)", WS_TLS),
        ("held until the response ends", ST_BUFFERING),
        ("live when Accept is text/event-stream", ST_BUFFERING),
    ),
    "Survives a dropped connection without loss": _row(
        ("yes: next poll asks after=last seq", POLL_DROP),
        ("yes: next poll asks after=last seq", POLL_DROP),
        ("yes: retries with backoff until 2xx", WH_RETRIES),
        ("yes: reconnect with after=N, server replays", WS_RESUME),
        ("yes: reconnect with after=N", POLL_DROP),
        ("yes: Last-Event-ID replay", ST_RESUME),
    ),
    "Delivery when the consumer is offline": _row(
        ("bounded log; resync notice when gone", POLL_DROP),
        ("bounded log; resync notice when gone", POLL_DROP),
        ("durable outbox, retries, dead letters", WH_OUTBOX),
        ("bounded log; room.resync when gone", WS_RESUME),
        ("bounded log; resync notice when gone", ST_RESUME),
        ("bounded log; resync notice when gone", ST_RESUME),
    ),
    "Ordering": _row(
        ("in order (seq)", POLL_SIDE_BY_SIDE),
        ("in order (seq)", POLL_SIDE_BY_SIDE),
        ("not guaranteed: concurrent retries; order by seq", WH_RETRIES),
        ("in order on one connection", WS_ROOM),
        ("in order on one connection", ST_FEED),
        ("in order on one connection", ST_FEED),
    ),
    "Auth options": _row(
        ("as any HTTP request: header or cookie", ST_SECURE),
        ("as any HTTP request: header or cookie", ST_SECURE),
        ("HMAC signature (Standard Webhooks), timestamp window", WH_ATTACKS),
        ("token at the handshake + exact Origin check", WS_GUARD),
        ("any HTTP auth header or cookie", ST_SECURE),
        ("cookie or short-lived URL token (no headers)", ST_SECURE),
    ),
    "What scaling costs": _row(
        ("a request per poll per client, news or not", CH_RATE),
        ("a parked request per client", CH_RATE),
        ("a POST per event per subscriber; outbox writes", CH_BYTES),
        ("a socket per client; backplane beyond one process", SC_SCALEOUT),
        ("an open response per client", SC_CONNECTIONS),
        ("an open response per client; fan-out per event", SC_FANOUT),
    ),
    "Mobile battery and data": _row(
        ("worst: radio wakes every poll", CH_RATE),
        ("a request per event, idle timeouts", CH_RATE),
        ("n/a: server to server", WH_CHOOSE),
        ("pings wake the radio: close when idle", WS_MOBILE),
        ("heartbeats wake the radio", ST_HEARTBEAT),
        ("heartbeats wake the radio; resumes cheaply", ST_HEARTBEAT),
    ),
}


def feature_matrix_markdown() -> str:
    """The matrix as a Markdown table, every cell a link to its evidence."""
    head = "| Property | " + " | ".join(TRANSPORTS.values()) + " |"
    lines = [head, "|" + "|".join("---" for _ in range(len(TRANSPORTS) + 1)) + "|"]
    for prop, row in FEATURES.items():
        cells = [row[t][1].markdown(row[t][0]) for t in TRANSPORTS]
        lines.append(f"| {prop} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def all_evidence() -> list[Evidence]:
    """Every section any rule, caveat or matrix cell cites."""
    found: list[Evidence] = []
    for rule in RULES:
        found += rule.evidence
    for caveat in CAVEATS:
        found += caveat.evidence
    for row in FEATURES.values():
        found += [ev for _, ev in row.values()]
    return list(dict.fromkeys(found))


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


def broken_evidence() -> list[Evidence]:
    """Evidence whose heading is not in its notebook (should be empty)."""
    cache: dict[str, set[str]] = {}
    broken = []
    for ev in all_evidence():
        if ev.notebook not in cache:
            path = NOTEBOOKS / ev.notebook
            cache[ev.notebook] = notebook_headings(ev.notebook) if path.exists() else set()
        if ev.heading not in cache[ev.notebook]:
            broken.append(ev)
    return broken


# -- the widget ------------------------------------------------------------------------
def _html_text(text: str) -> str:
    import html
    import re

    escaped = html.escape(text, quote=False)
    # The only Markdown the reasons use: **bold** and [label](href).
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2" target="_blank">\1</a>', escaped)


def recommendation_html(rec: Recommendation) -> str:
    parts = [f"<p>{_html_text(f'**Use {rec.label}** (rule: {rec.rule}).')}</p><p>Why:</p><ul>"]
    parts += [f"<li>{_html_text(r)}</li>" for r in rec.reasons]
    links = ", ".join(_html_text(e.markdown()) for e in rec.evidence)
    parts.append(f"<li>Shown live in: {links}</li></ul>")
    if rec.caveats:
        parts.append("<p>Watch out:</p><ul>")
        parts += [f"<li>{_html_text(c)}</li>" for c in rec.caveats]
        links = ", ".join(_html_text(e.markdown()) for e in rec.caveat_evidence)
        parts.append(f"<li>Shown live in: {links}</li></ul>")
    return "".join(parts)


class RecommenderPanel:
    """The questions as widgets, the answer as HTML, updated on every change.

    Programmatic twins: set ``panel.consumer.value = "server"`` (or any other
    control's ``.value``) and read ``panel.recommendation`` /
    ``panel.answer.value``: the same code path a click takes.
    """

    def __init__(self, needs: Needs | None = None) -> None:
        import ipywidgets as w

        n = needs or Needs()
        style = {"description_width": "initial"}
        self.consumer = w.ToggleButtons(
            options=[("a server", "server"), ("a browser", "browser")],
            value=n.consumer,
            description="Who consumes the events?",
            style=style,
        )
        self.sends = w.Checkbox(n.consumer_sends, description="The consumer also sends")
        self.offline = w.Checkbox(
            n.must_survive_offline, description="Events must survive the consumer being offline"
        )
        self.rate = w.FloatLogSlider(
            value=max(n.events_per_second, 0.01),
            base=10,
            min=-2,
            max=4,
            step=0.1,
            description="Events per second",
            style=style,
        )
        self.mobile = w.Checkbox(n.mobile, description="Mobile clients")
        self.proxies = w.Checkbox(
            n.behind_proxies, description="Behind buffering proxies / strict firewalls"
        )
        self.answer = w.HTML()
        self.controls = [self.consumer, self.sends, self.offline, self.rate, self.mobile,
                         self.proxies]  # fmt: skip
        for control in self.controls:
            control.observe(self._update, names="value")
        self.widget = w.VBox(
            [w.HTML("<b>Which transport?</b>"), *self.controls, self.answer],
            layout=w.Layout(border="1px solid #ccc", padding="6px"),
        )
        self.recommendation: Recommendation
        self._update()

    def needs(self) -> Needs:
        return Needs(
            consumer=self.consumer.value,
            consumer_sends=self.sends.value,
            must_survive_offline=self.offline.value,
            events_per_second=self.rate.value,
            mobile=self.mobile.value,
            behind_proxies=self.proxies.value,
        )

    def _update(self, _change: object = None) -> None:
        self.recommendation = recommend(self.needs())
        self.answer.value = recommendation_html(self.recommendation)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def close(self) -> None:
        for control in self.controls:
            control.unobserve(self._update, names="value")
        self.widget.close()
