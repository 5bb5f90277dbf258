"""The decision notebook's feature matrix, and the check that its links hold."""

from __future__ import annotations

from .evidence import (
    CH_BYTES,
    CH_RATE,
    NOTEBOOKS,
    POLL_DROP,
    POLL_SIDE_BY_SIDE,
    SC_CONNECTIONS,
    SC_FANOUT,
    SC_SCALEOUT,
    ST_BUFFERING,
    ST_FEED,
    ST_HEARTBEAT,
    ST_RESUME,
    ST_SECURE,
    TRANSPORTS,
    WH_ATTACKS,
    WH_CHOOSE,
    WH_OUTBOX,
    WH_REGISTER,
    WH_RETRIES,
    WS_GUARD,
    WS_MOBILE,
    WS_RESUME,
    WS_ROOM,
    WS_TLS,
    Evidence,
    notebook_headings,
)
from .rules import CAVEATS, RULES

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
        (
            "live through jupyter-server-proxy (Accept: text/event-stream); "
            "nginx needs X-Accel-Buffering: no; many proxies buffer it",
            ST_BUFFERING,
        ),
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
        ("bounded log; resync notice when gone", WS_RESUME),
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
