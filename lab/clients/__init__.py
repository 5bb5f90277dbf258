"""Kernel-side clients: each runs in a background thread and records arrivals.

``base`` (``BackgroundClient``: the thread, stop and retry logic every client
shares), ``polling`` (short and long polling), ``ndjson`` (the push stream),
``sse`` (the reconnecting SSE client), ``websocket`` (the room client),
``browser`` (clients that run in the notebook's page, not in the kernel).
"""

from .base import BackgroundClient, cut_connection
from .ndjson import NDJSONStreamClient
from .polling import LongPollingClient, PollingClient, ShortPollingClient
from .sse import ReconnectingSSEClient
from .websocket import RoomClient

__all__ = [
    "BackgroundClient",
    "LongPollingClient",
    "NDJSONStreamClient",
    "PollingClient",
    "ReconnectingSSEClient",
    "RoomClient",
    "ShortPollingClient",
    "cut_connection",
]
