"""Plots and clean-up for notebook 05 and its in-depth companion.

The harness (``benchmarks.harness``) measures; these draw its results the
same way every time, so the notebooks' cells stay about the numbers.
"""

from __future__ import annotations

import threading
from typing import Any

COLORS = {
    "short_polling": "#999",
    "long_polling": "#666",
    "webhooks": "#c60",
    "websocket": "#26a",
    "ndjson": "#393",
    "sse": "#7a3",
}
# Threads the harness's servers, relay and clients run in (``clean_up`` checks them).
THREAD_PREFIXES = ("server-", "counting-relay", "short-polling", "long-polling", "push-stream",
                   "sse", "ws-client")  # fmt: skip


def plot_latency(doc: dict[str, Any], ax: Any = None) -> Any:
    """One box per transport, log scale: box p25-p75, whiskers p1-p99."""
    import matplotlib.pyplot as plt

    rows = doc["transports"]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.8))
    box = ax.boxplot([r["latencies_ms"] for r in rows], whis=(1, 99), patch_artist=True,
                     flierprops={"markersize": 2})  # fmt: skip
    ax.set_xticks(range(1, len(rows) + 1), [r["label"] for r in rows])
    for patch, r in zip(box["boxes"], rows, strict=True):
        patch.set_facecolor(COLORS[r["transport"]])
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log scale)")
    method = doc["method"]
    ax.set_title(f"Publish to arrival, {method['events']} events at {method['rate_eps']:g}/s")
    return ax


def plot_bytes(doc: dict[str, Any], ax: Any = None) -> Any:
    """Bytes per event towards the consumer and back, against the payload alone."""
    import matplotlib.pyplot as plt

    rows = doc["transports"]
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.5))
    x = range(len(rows))
    to_c = [r["bytes_per_event"]["to_consumer"] for r in rows]
    from_c = [r["bytes_per_event"]["from_consumer"] for r in rows]
    ax.bar([i - 0.2 for i in x], to_c, width=0.4, label="to consumer", color="#26a")
    ax.bar([i + 0.2 for i in x], from_c, width=0.4, label="from consumer", color="#c60")
    ax.set_xticks(list(x), [r["label"] for r in rows])
    ax.set_ylabel("bytes per event")
    payload = doc["method"]["payload_bytes"]
    ax.axhline(payload, color="k", lw=0.8, ls=":", label="payload alone")
    ax.legend()
    ax.set_title("Bytes on the wire per event (headers and framing included)")
    return ax


def plot_cost(cost: list[dict], transports: tuple[str, ...], full: dict | None = None) -> Any:
    """Bytes per event (both directions) against the event rate, log-log; the
    committed full run's short-polling curve dotted, when there is one."""
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(7, 3.8))
    for key in transports:
        pts = [(c["rate_eps"], c["bytes_per_event"]) for c in cost if c["transport"] == key]
        ax.plot(*zip(*pts, strict=True), marker="o", label=key, color=COLORS[key])
    full_pts = [
        (c["rate_eps"], c["bytes_per_event"])
        for c in (full or {}).get("cost_vs_rate", [])
        if c["transport"] == "short_polling"
    ]
    if full_pts:
        ax.plot(*zip(*full_pts, strict=True), ls=":", color=COLORS["short_polling"],
                label="short_polling (full run)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("events per second")
    ax.set_ylabel("bytes per event (both directions)")
    ax.set_title("Polling's waste vs push")
    ax.legend()
    return ax


def leftover_threads() -> list[str]:
    """Names of harness threads still alive (none, after a clean run)."""
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIXES)]
