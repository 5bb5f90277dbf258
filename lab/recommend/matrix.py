"""The decision notebook's feature matrix, and the check that its links hold."""

from __future__ import annotations

import json
import re

from .evidence import (
    CH_BYTES,
    CH_POLLING,
    CH_RATE,
    CHUNKED,
    FETCH,
    HTTP_AUTH,
    NGINX_WS,
    NOTEBOOKS,
    PUSH_API,
    PUSH_FCM,
    SC_CONNECTIONS,
    SSE_CREDENTIALS,
    ST_BUFFERING,
    ST_FEED,
    ST_HEARTBEAT,
    ST_RESUME,
    STRIPE_WEBHOOKS,
    TRANSPORTS,
    WE_COST,
    WE_HEARTBEATS,
    WE_NAT,
    WH_ATTACKS,
    WH_OUTBOX,
    WH_RETRIES,
    WS_GUARD,
    WS_MEASURED,
    WS_RESUME,
    WS_ROOM,
    Evidence,
    Source,
    notebook_headings,
)
from .rules import CAVEATS, RULES

# -- the feature matrix ------------------------------------------------------------
# property -> transport -> (what was shown, where). Short cells: the linked
# section has the detail. A cell whose evidence is a ``Source`` is stated,
# not shown here, and says so.
_ORDER = tuple(TRANSPORTS)
Cell = tuple[str, Evidence | Source]


def _row(*cells: Cell) -> dict[str, Cell]:
    return dict(zip(_ORDER, cells, strict=True))


FEATURES: dict[str, dict[str, Cell]] = {
    "Direction": _row(
        ("server → client, client asks", CH_POLLING),
        ("server → client, client asks", CH_POLLING),
        ("provider → your server", WH_RETRIES),
        ("both ways, one connection", WS_ROOM),
        ("server → client", ST_FEED),
        ("server → client", ST_FEED),
    ),
    "Works from a browser": _row(
        ("yes (fetch)", FETCH),
        ("yes (fetch)", FETCH),
        ("no: a browser accepts no requests", PUSH_API),
        ("yes (WebSocket API)", WS_GUARD),
        ("yes (fetch + reader), but proxies buffer it", ST_BUFFERING),
        ("yes (EventSource, built in)", ST_FEED),
    ),
    "Behind a buffering proxy": _row(
        ("works: each answer is already complete", CH_POLLING),
        ("works: a held answer is still one complete response", CH_POLLING),
        ("POSTs pass; the receiver needs a public URL (no NAT)", STRIPE_WEBHOOKS),
        ("works where the proxy forwards Upgrade (nginx: configured)", NGINX_WS),
        ("held until the response ends", ST_BUFFERING),
        (
            "live through jupyter-server-proxy (Accept: text/event-stream); "
            "nginx needs X-Accel-Buffering: no; many proxies buffer it",
            ST_BUFFERING,
        ),
    ),
    "Survives a dropped connection without loss": _row(
        ("yes: next poll asks after=last seq", CH_POLLING),
        ("yes: next poll asks after=last seq", CH_POLLING),
        ("yes: retries with backoff until 2xx", WH_RETRIES),
        ("yes: reconnect with after=N, server replays", WS_RESUME),
        ("yes: reconnect with after=N", ST_RESUME),
        ("yes: Last-Event-ID replay", ST_RESUME),
    ),
    "Delivery when the consumer is offline": _row(
        ("bounded log; resync notice when gone", CH_POLLING),
        ("bounded log; resync notice when gone", CH_POLLING),
        ("durable outbox, retries, dead letters", WH_OUTBOX),
        ("replay from a bounded log", WS_RESUME),
        ("replay from a bounded log", ST_RESUME),
        ("replay from a bounded log", ST_RESUME),
    ),
    "Ordering": _row(
        ("in order (seq)", CH_POLLING),
        ("in order (seq)", CH_POLLING),
        ("not guaranteed: concurrent retries; order by seq", STRIPE_WEBHOOKS),
        ("in order on one connection", WS_ROOM),
        ("in order on one connection", ST_FEED),
        ("in order on one connection", ST_FEED),
    ),
    "Auth options": _row(
        ("any HTTP auth: a header (shown) or a cookie", CH_POLLING),
        ("any HTTP auth: a header or a cookie", HTTP_AUTH),
        ("HMAC signature (Standard Webhooks), timestamp window", WH_ATTACKS),
        ("token at the handshake + exact Origin check", WS_GUARD),
        ("any HTTP auth header or cookie", HTTP_AUTH),
        ("cookie or short-lived URL token (no headers)", SSE_CREDENTIALS),
    ),
    "What scaling costs": _row(
        ("a request per poll per client, news or not", CH_RATE),
        ("about a request per event, each parked until news", CH_RATE),
        ("a POST per event per subscriber; outbox writes", CH_BYTES),
        ("a socket per client: memory and a file descriptor", SC_CONNECTIONS),
        ("an open response per client, as SSE", CHUNKED),
        ("an open response per client: memory and a file descriptor", SC_CONNECTIONS),
    ),
    "Behind a NAT that forgets idle connections": _row(
        ("the next poll notices: a reset, then a new connection", WE_NAT),
        ("the next poll notices, if its timeout is short", WE_NAT),
        ("the next POST gets a reset and is retried", WE_NAT),
        ("stuck until a ping is missed: heartbeat < NAT timeout", WE_HEARTBEATS),
        ("stuck until a heartbeat line is missed", WE_HEARTBEATS),
        ("stuck until a heartbeat comment is missed", WE_HEARTBEATS),
    ),
    "Mobile battery and data": _row(
        ("worst: a request per poll, news or not", CH_RATE),
        ("about a request per event", CH_RATE),
        ("n/a: phones get no webhooks; a push service reaches them", PUSH_FCM),
        ("pings wake the radio: close when idle", WS_MEASURED),
        ("heartbeats wake the radio", WE_COST),
        ("heartbeats wake the radio; resumes cheaply", ST_HEARTBEAT),
    ),
}


def feature_matrix_markdown() -> str:
    """The matrix as a Markdown table, every cell a link to its evidence."""
    head = "| Property | " + " | ".join(TRANSPORTS.values()) + " |"
    lines = [head, "|" + "|".join("---" for _ in range(len(TRANSPORTS) + 1)) + "|"]
    for prop, row in FEATURES.items():
        cells = [row[t][1].markdown(row[t][0]) for t in TRANSPORTS]  # a Source says "stated"
        lines.append(f"| {prop} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- what "shown" means -------------------------------------------------------------
# A code cell names a transport when its source matches that transport's words
# (case-insensitive). Kept short and literal so a reader can check it by eye.
TRANSPORT_WORDS = {
    "short_polling": r"short[_ -]?poll",
    "long_polling": r"long[_ -]?poll",
    "webhooks": r"webhook|receiver|provider",
    "websocket": r"websocket|\bwss?\b|\bws_|_ws\b|room|members",
    "ndjson": r"ndjson|chunked",
    "sse": r"\bsse|_sse\b|eventsource|event-stream|last-event-id",
}


def section_code(ev: Evidence) -> list[str]:
    """The code cells of the section ``ev`` links to: from its heading to the
    next heading of the same or a higher level (``##`` includes its ``###``)."""
    doc = json.loads((NOTEBOOKS / ev.notebook).read_text(encoding="utf-8"))
    level, found = 0, []
    for cell in doc["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            for line in text.splitlines():
                if not line.startswith("#"):
                    continue
                depth = len(line) - len(line.lstrip("#"))
                if level and depth <= level:
                    return found
                if not level and line.lstrip("#").strip() == ev.heading:
                    level = depth
        elif level:
            found.append(text)
    return found


def asserts_transport(ev: Evidence, transport: str) -> bool:
    """Does a code cell of ``ev``'s section assert something and name ``transport``?"""
    words = re.compile(TRANSPORT_WORDS[transport], re.I)
    return any(
        re.search(r"^\s*assert\b", code, re.M) and words.search(code) for code in section_code(ev)
    )


def unproven_cells() -> list[tuple[str, str, str]]:
    """Matrix cells marked shown whose section asserts nothing about their
    transport: (property, transport, heading). Should be empty."""
    return [
        (prop, transport, ev.heading)
        for prop, row in FEATURES.items()
        for transport, (_, ev) in row.items()
        if ev.shown and not asserts_transport(ev, transport)
    ]


def all_evidence() -> list[Evidence | Source]:
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
        if not ev.shown:  # a Source: stated, not shown here
            continue
        if ev.notebook not in cache:
            path = NOTEBOOKS / ev.notebook
            cache[ev.notebook] = notebook_headings(ev.notebook) if path.exists() else set()
        if ev.heading not in cache[ev.notebook]:
            broken.append(ev)
    return broken
