"""Kernel-side clients: each runs in a background thread and records arrivals.

``base`` (the thread and stop logic every client shares, the polling and
NDJSON clients), ``sse`` (the reconnecting SSE client), ``websocket`` (the
room client), ``browser`` (clients that run in the notebook's page).
"""

from .base import (
    BackgroundClient,
    LongPollingClient,
    NDJSONStreamClient,
    ShortPollingClient,
    cut_connection,
    wait_until,
)

__all__ = [
    "BackgroundClient",
    "LongPollingClient",
    "NDJSONStreamClient",
    "ShortPollingClient",
    "cut_connection",
    "wait_until",
]
