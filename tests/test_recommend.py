"""The recommender, table-driven: the seed article's three use cases and their
edge cases, plus the evidence links of every rule, caveat and matrix cell."""

from __future__ import annotations

import pytest

from lab import recommend as r
from lab.recommend import Needs, recommend

# (case, needs, expected transport, a phrase the caveats must contain or None)
CASES = [
    # 1. Mail bounce notifications (the seed's webhook example): a mail service
    #    tells your server; your server may be down for a while.
    (
        "mail bounces",
        Needs("server", must_survive_offline=True, events_per_second=0.1),
        "webhooks",
        None,
    ),
    (
        "mail bounces, receiver never offline",
        Needs("server", events_per_second=0.1),
        "webhooks",
        None,
    ),
    (
        "mail bounces at a high rate, must survive downtime",
        Needs("server", must_survive_offline=True, events_per_second=500),
        "webhooks",
        "batch events",
    ),
    (
        "mail bounces, receiver behind a corporate proxy",
        Needs("server", must_survive_offline=True, behind_proxies=True),
        "webhooks",
        None,
    ),
    # 2. Chat and online games (the seed's WebSocket examples): browsers that send too.
    ("chat", Needs("browser", consumer_sends=True, events_per_second=5), "websocket", "backplane"),
    ("online game", Needs("browser", consumer_sends=True, events_per_second=60), "websocket", None),
    ("chat on phones", Needs("browser", consumer_sends=True, mobile=True), "websocket", "radio"),
    (
        "chat behind a strict proxy",
        Needs("browser", consumer_sends=True, behind_proxies=True),
        "websocket",
        "fallback",
    ),
    (
        "chat, messages must wait for offline members",
        Needs("browser", consumer_sends=True, must_survive_offline=True),
        "websocket",
        "replay buffer",
    ),
    (
        "game server talking to a match-making server",
        Needs("server", consumer_sends=True, events_per_second=50),
        "websocket",
        None,
    ),
    # 3. Live social / financial feeds (the seed's streaming examples).
    ("live social feed in a browser", Needs("browser", events_per_second=2), "sse", None),
    ("stock ticker in a browser", Needs("browser", events_per_second=200), "sse", None),
    ("stock ticker on phones", Needs("browser", events_per_second=20, mobile=True), "sse", "radio"),
    ("feed behind a buffering proxy", Needs("browser", behind_proxies=True), "sse", None),
    ("market data into a trading server", Needs("server", events_per_second=500), "ndjson", None),
    (
        "market data into a server behind a proxy",
        Needs("server", events_per_second=500, behind_proxies=True),
        "sse",
        "buffering proxy",
    ),
    (
        "feed for a browser that may be offline",
        Needs("browser", must_survive_offline=True),
        "sse",
        "cannot receive webhooks",
    ),
    # The threshold between "low" and "high" rate is explicit.
    (
        "server at exactly the threshold",
        Needs("server", events_per_second=r.HIGH_RATE_EPS),
        "webhooks",
        None,
    ),
    (
        "server just above the threshold",
        Needs("server", events_per_second=r.HIGH_RATE_EPS + 0.1),
        "ndjson",
        None,
    ),
]


@pytest.mark.parametrize("case, needs, expected, caveat", CASES, ids=[c[0] for c in CASES])
def test_use_cases(case, needs, expected, caveat):
    rec = recommend(needs)
    assert rec.transport == expected, f"{case}: got {rec.transport} by rule {rec.rule!r}"
    assert rec.reasons and rec.evidence, f"{case}: a recommendation needs reasons and evidence"
    if caveat is not None:
        assert any(caveat in c for c in rec.caveats), f"{case}: caveats {rec.caveats}"


def test_no_caveat_when_none_applies():
    assert recommend(Needs("server", must_survive_offline=True)).caveats == []


def test_every_rule_is_reachable():
    chosen = {recommend(n).rule for _, n, _, _ in CASES}
    assert chosen == {rule.name for rule in r.RULES}


def test_every_caveat_is_exercised():
    seen = {c for _, n, _, _ in CASES for c in recommend(n).caveats}
    assert seen == {c.text for c in r.CAVEATS}


@pytest.mark.parametrize(
    "kwargs",
    [{"consumer": "phone"}, {"events_per_second": -1}, {"events_per_second": float("nan")}],
)
def test_bad_questions_are_refused(kwargs):
    with pytest.raises(ValueError):
        Needs(**kwargs)


def test_markdown_names_the_transport_and_links_the_evidence():
    text = recommend(Needs("browser", consumer_sends=True, mobile=True)).markdown()
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
    finally:
        panel.close()
    panel.sends.value = True  # after close(), changes no longer recompute
    assert panel.recommendation.transport == "sse"
