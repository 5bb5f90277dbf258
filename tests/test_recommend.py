"""The recommender, table-driven: the seed article's three use cases and their
edge cases, plus the evidence links of every rule, caveat and matrix cell."""

from __future__ import annotations

import pytest

from lab import recommend as r
from lab.recommend import Needs, recommend

NB00, NB01 = "00_start_here.ipynb#", "01_webhooks.ipynb#"
NB02, NB03, NB05 = "02_websockets.ipynb#", "03_http_streaming.ipynb#", "05_choosing.ipynb#"
OUTBOX = NB01 + "The-durable-outbox:-a-provider-restart-loses-nothing"
POST = NB01 + "Register-a-URL,-receive-a-POST"
ROOM, FEED = NB02 + "A-live-room", NB03 + "A-live-feed,-two-ways"
WEB_PUSH, FCM = "https://www.rfc-editor.org/rfc/rfc8030", "https://firebase.google.com/"
BOTH, UP = "both", "from_consumer"

# (case, needs, expected answer, a phrase the reasons must contain, an evidence
#  link (prefix) the answer must cite, a phrase the caveats must contain or None)
CASES = [
    # 1. Mail bounce notifications (the seed's webhook example): a mail service
    #    tells your server; your server may be down for a while.
    ("mail bounces", Needs("server", must_survive_offline=True, events_per_second=0.1),
     "webhooks", "durable outbox", OUTBOX, None),
    ("mail bounces, receiver never offline", Needs("server", events_per_second=0.1),
     "webhooks", "provider POSTs", POST, None),
    ("mail bounces at a high rate, must survive downtime",
     Needs("server", must_survive_offline=True, events_per_second=500),
     "webhooks", "durable outbox", OUTBOX, "batch events"),
    ("mail bounces, receiver behind a corporate proxy",
     Needs("server", must_survive_offline=True, behind_proxies=True),
     "webhooks", "retries", OUTBOX, None),
    ("mail bounces, receiver suspended at night",
     Needs("server", may_be_closed=True, events_per_second=0.1),
     "webhooks", "durable outbox", OUTBOX, None),
    # 2. Chat and online games (the seed's WebSocket examples): browsers that send too.
    ("chat", Needs("browser", BOTH, events_per_second=5), "websocket", "both directions", ROOM,
     "backplane"),
    ("online game", Needs("browser", BOTH, events_per_second=60), "websocket", "frame", ROOM,
     None),
    ("chat on phones", Needs("browser", BOTH, mobile=True), "websocket", "sequence number",
     NB02 + "Reconnect-and-resume", "radio"),
    ("chat behind a strict proxy", Needs("browser", BOTH, behind_proxies=True), "websocket",
     "both directions", ROOM, "fallback"),
    ("chat, messages must wait for offline members",
     Needs("browser", BOTH, must_survive_offline=True), "websocket", "both directions", ROOM,
     "replay buffer"),
    ("game server talking to a match-making server", Needs("server", BOTH, events_per_second=50),
     "websocket", "both directions", ROOM, None),
    ("a bot behind NAT that chats with a platform", Needs("server", BOTH, reachable=False),
     "websocket", "behind NAT", ROOM, None),
    # 3. Live social / financial feeds (the seed's streaming examples).
    ("live social feed in a browser", Needs("browser", events_per_second=2), "sse",
     "EventSource", FEED, None),
    ("stock ticker in a browser", Needs("browser", events_per_second=200), "sse",
     "Last-Event-ID", FEED, None),
    ("stock ticker on phones", Needs("browser", events_per_second=20, mobile=True), "sse",
     "EventSource", FEED, "radio"),
    ("feed behind a buffering proxy", Needs("browser", behind_proxies=True), "sse",
     "X-Accel-Buffering", NB03 + "The-buffering-trap,-measured", None),
    ("market data into a trading server", Needs("server", events_per_second=500), "ndjson",
     "leanest stream", NB05 + "Bytes-on-the-wire-per-event", None),
    ("market data into a server behind a proxy",
     Needs("server", events_per_second=500, behind_proxies=True), "sse", "EventSource", FEED,
     "buffering proxy"),
    ("feed for a browser that may be offline", Needs("browser", must_survive_offline=True),
     "sse", "Last-Event-ID", FEED, "cannot receive webhooks"),
    # Issue 18: a server nobody can reach at a public URL (NAT, no inbound rule).
    ("provider events into a backend behind NAT",
     Needs("server", reachable=False, events_per_second=1), "ndjson", "behind NAT", FEED, None),
    ("... that must not lose events while it is down",
     Needs("server", reachable=False, must_survive_offline=True), "ndjson", "resumes",
     FEED, "cannot receive webhooks"),
    ("... behind an egress proxy",
     Needs("server", reachable=False, behind_proxies=True), "sse", "EventSource", FEED,
     "buffering proxy"),
    ("rare events into a backend behind NAT",
     Needs("server", reachable=False, events_per_second=0.001), "short_polling",
     "a poll every minute", NB00 + "When-the-connection-drops", None),
    ("... that may be down for a day",
     Needs("server", reachable=False, events_per_second=0.001, may_be_closed=True),
     "short_polling", "missed poll loses nothing", NB00 + "Polling-and-push,-side-by-side",
     "replay buffer"),
    # Issue 18: a mobile app (or a browser tab) that must be told while it is closed.
    ("mobile app told while closed", Needs("browser", may_be_closed=True, mobile=True),
     "push_service", "APNs", FCM, "radio"),
    ("... the reasons say what to use while it is open",
     Needs("browser", may_be_closed=True, mobile=True), "push_service",
     "While it is open: SSE", FEED, None),
    ("web app told while its tab is closed", Needs("browser", may_be_closed=True), "push_service",
     "Web Push", WEB_PUSH, None),
    ("chat app that must ring while closed", Needs("browser", BOTH, may_be_closed=True),
     "push_service", "While it is open: WebSocket", ROOM, "backplane"),
    # Issue 18: traffic that is mostly consumer to server (devices reporting readings).
    ("devices reporting readings", Needs("server", UP, events_per_second=0.2), "http_posts",
     "plain HTTP POST", POST, None),
    ("phones reporting readings", Needs("browser", UP, mobile=True), "http_posts",
     "retried with the same id", "https://www.rfc-editor.org/rfc/rfc9110#section-9.3.3", None),
    ("sensors reporting 50 readings a second", Needs("server", UP, events_per_second=50),
     "http_posts", "batch", NB05 + "Bytes-on-the-wire-per-event", "batch them"),
    # The thresholds between "rare", "low" and "high" rate are explicit.
    ("server at exactly the threshold", Needs("server", events_per_second=r.HIGH_RATE_EPS),
     "webhooks", "provider POSTs", POST, None),
    ("server just above the threshold",
     Needs("server", events_per_second=r.HIGH_RATE_EPS + 0.1), "ndjson", "leanest", FEED, None),
    ("unreachable server at exactly the rare threshold",
     Needs("server", reachable=False, events_per_second=r.RARE_EPS), "ndjson", "dials out",
     FEED, None),
]  # fmt: skip


@pytest.mark.parametrize(
    "case, needs, expected, reason, link, caveat", CASES, ids=[c[0] for c in CASES]
)
def test_use_cases(case, needs, expected, reason, link, caveat):
    rec = recommend(needs)
    assert rec.transport == expected, f"{case}: got {rec.transport} by rule {rec.rule!r}"
    assert any(reason in text for text in rec.reasons), f"{case}: reasons {rec.reasons}"
    hrefs = [e.href for e in rec.evidence]
    assert any(h.startswith(link) for h in hrefs), f"{case}: evidence {hrefs}"
    if caveat is None:
        return
    assert any(caveat in c for c in rec.caveats), f"{case}: caveats {rec.caveats}"
    assert rec.caveat_evidence, f"{case}: a caveat needs evidence too"


def test_none_of_the_three_says_so():
    for needs in (Needs("browser", may_be_closed=True), Needs("server", "from_consumer")):
        text = recommend(needs).markdown()
        assert "stated, not shown here" in text, text
    closed = recommend(Needs("browser", may_be_closed=True)).reasons[0]
    assert "none of the three transports can reach it" in closed


def test_no_caveat_when_none_applies():
    assert recommend(Needs("server", must_survive_offline=True)).caveats == []


def test_every_rule_is_reachable():
    chosen = {recommend(c[1]).rule for c in CASES}
    assert chosen == {rule.name for rule in r.RULES}


def test_every_caveat_is_exercised():
    seen = {text for c in CASES for text in recommend(c[1]).caveats}
    assert seen == {c.text for c in r.CAVEATS}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"consumer": "phone"},
        {"direction": "up"},
        {"events_per_second": -1},
        {"events_per_second": float("nan")},
    ],
)
def test_bad_questions_are_refused(kwargs):
    with pytest.raises(ValueError):
        Needs(**kwargs)


def test_markdown_names_the_transport_and_links_the_evidence():
    text = recommend(Needs("browser", "both", mobile=True)).markdown()
    assert text.startswith("**Use WebSocket**")
    assert "(02_websockets.ipynb#Reconnect-and-resume)" in text
    assert "Watch out:" in text


def test_anchor_is_jupyterlabs_heading_id():
    ev = r.Evidence("01_webhooks.ipynb", "When the receiver fails: retries, backoff and jitter")
    assert ev.href == "01_webhooks.ipynb#When-the-receiver-fails:-retries,-backoff-and-jitter"


def test_every_evidence_link_points_at_an_existing_heading():
    assert r.broken_evidence() == []


def test_feature_matrix_has_every_property_and_transport():
    props = [
        "Direction",
        "Works from a browser",
        "Behind a buffering proxy",
        "Survives a dropped connection without loss",
        "Delivery when the consumer is offline",
        "Ordering",
        "Auth options",
        "What scaling costs",
        "Behind a NAT that forgets idle connections",
        "Mobile battery and data",
    ]
    assert list(r.FEATURES) == props
    table = r.feature_matrix_markdown().splitlines()
    assert len(table) == 2 + len(props)
    for line in table[2:]:
        assert line.count("](") == len(r.TRANSPORTS), line


def test_panel_twins_follow_the_same_rules():
    panel = r.RecommenderPanel()
    try:
        assert panel.recommendation.transport == recommend(Needs()).transport == "sse"
        panel.consumer.value = "server"
        panel.offline.value = True
        assert panel.recommendation.transport == "webhooks"
        assert "Use webhooks" in panel.answer.value
        assert 'href="01_webhooks.ipynb#The-durable-outbox:-a-provider-restart-loses-nothing"' in (
            panel.answer.value
        )
        panel.offline.value = False
        panel.rate.value = 1000
        assert panel.recommendation.transport == "ndjson"
        panel.proxies.value = True
        assert panel.recommendation.transport == "sse"
        assert "Watch out:" in panel.answer.value
        panel.proxies.value = False
        panel.reachable.value = False
        panel.rate.value = 0.001
        assert panel.recommendation.transport == "short_polling"
        panel.direction.value = "from_consumer"
        assert panel.recommendation.transport == "http_posts"
        panel.direction.value = "to_consumer"
        panel.consumer.value = "browser"
        panel.closed.value = True
        assert panel.recommendation.transport == "push_service"
        assert "stated, not shown here" in panel.answer.value
        panel.set_needs(Needs())
        assert panel.needs() == Needs() and panel.recommendation.transport == "sse"
    finally:
        panel.close()
    panel.direction.value = "both"  # after close(), changes no longer recompute
    assert panel.recommendation.transport == "sse"


def test_every_shown_cell_is_asserted_where_it_links():
    """The feature matrix's promise, checked. A cell is either *shown* (its
    evidence is a notebook section) or *stated* (its evidence is a ``Source``:
    a URL or a spec section, rendered "stated, not shown here").

    The rule for a shown cell: the section it links to (from its heading to
    the next heading of the same or a higher level, so a ``##`` section
    includes its ``### Checkpoint``) holds a code cell that contains an
    ``assert`` statement *and* names the cell's transport, i.e. matches, case
    insensitive, that transport's words in ``lab.recommend.TRANSPORT_WORDS``:

    - short polling: ``short polling`` / ``short_polling`` / ``short-polling``
    - long polling: the same with ``long``
    - webhooks: ``webhook``, ``receiver``, ``provider``
    - WebSocket: ``websocket``, ``ws``/``wss`` as a word, ``ws_``/``_ws``, ``room``, ``members``
    - chunked NDJSON: ``ndjson``, ``chunked``
    - SSE: ``sse`` at a word start or as ``_sse``, ``eventsource``, ``event-stream``,
      ``last-event-id`` (not any ``sse``: ``assert`` contains one)
    """
    assert r.unproven_cells() == []
    words = r.TRANSPORT_WORDS
    assert set(words) == set(r.TRANSPORTS)


@pytest.mark.parametrize(
    "transport, code, names_it",
    [
        ("sse", "assert not proxied_sse.held_until_end", True),
        ("sse", "assert rows == 1", False),  # "assert" itself contains "sse"
        ("websocket", "assert opened_ws == N", True),
        ("websocket", "assert rows == 1", False),
        ("short_polling", 'at[("short_polling", low)]', True),
        ("long_polling", "short_latency < 5", False),
    ],
)
def test_transport_words(transport, code, names_it):
    import re

    assert bool(re.search(r.TRANSPORT_WORDS[transport], code, re.I)) == names_it


def test_the_links_the_issue_named_are_fixed():
    """Issue 18: each of these cells pointed at a section that did not show it."""
    cells = r.FEATURES
    proxy = cells["Behind a buffering proxy"]
    assert proxy["short_polling"][1].heading != "The buffering trap, measured"
    assert not proxy["websocket"][1].shown  # was "TLS: wss://": no proxy there
    assert cells["Delivery when the consumer is offline"]["short_polling"][1].notebook != (
        "00_start_here.ipynb"
    )
    assert cells["Auth options"]["short_polling"][1].heading != "Securing a stream"
    mobile = cells["Mobile battery and data"]["short_polling"][0]
    assert "radio" not in mobile  # the cost section counts requests and bytes, not the radio


def test_stated_cells_say_so_and_name_a_source():
    stated = [
        (text, ev) for row in r.FEATURES.values() for text, ev in row.values() if not ev.shown
    ]
    assert stated
    for text, ev in stated:
        md = ev.markdown(text)
        assert "stated, not shown here" in md and f"]({ev.href})" in md
        assert ev.href.startswith("https://"), ev
