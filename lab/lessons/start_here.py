"""Notebook 00's measurement: what polling costs compared with a push stream.

``measure(server, client)`` publishes the same paced sequence of events to
one client and reports what it cost: HTTP requests per event delivered and
the delivery latency of each event. ``sweep_poll_intervals`` repeats it for
short polling at several intervals; long polling and the push stream are
measured once each, on the very same schedule.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from benchmarks.stats import percentile
from lab.clients import (
    BackgroundClient,
    LongPollingClient,
    NDJSONStreamClient,
    ShortPollingClient,
)
from lab.recorder import ArrivalRecorder
from servers.runtime import ServerThread


@dataclass
class DeliveryResult:
    client: str
    poll_interval_s: float | None
    events_sent: int
    events_delivered: int
    requests: int
    duration_s: float
    latencies_ms: list[float] = field(repr=False)

    @property
    def requests_per_event(self) -> float:
        return self.requests / max(self.events_delivered, 1)

    @property
    def median_latency_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p95_latency_ms(self) -> float:
        return percentile(self.latencies_ms, 95) if self.latencies_ms else float("nan")

    def row(self) -> dict:
        return {
            "client": self.client,
            "poll interval (s)": self.poll_interval_s,
            "events": self.events_delivered,
            "requests": self.requests,
            "requests/event": round(self.requests_per_event, 2),
            "median latency (ms)": round(self.median_latency_ms, 1),
            "p95 latency (ms)": round(self.p95_latency_ms, 1),
        }


def measure(
    server: ServerThread,
    make_client: Callable[[str, ArrivalRecorder], BackgroundClient],
    n_events: int = 15,
    mean_gap_s: float = 0.2,
    seed: int = 0,
    poll_interval_s: float | None = None,
) -> DeliveryResult:
    """Publish ``n_events`` with random gaps (mean ``mean_gap_s``) to one
    fresh client and wait until all arrived (or 5 s after the last one).

    The gaps are random (seeded, so every client gets the same schedule):
    events at a fixed period would line up with a fixed poll interval and
    make polling look better or worse than it is.
    """
    first_seq = server.hub.log.last_seq + 1
    recorder = ArrivalRecorder(first_seq=first_seq)
    client = make_client(server.url, recorder)
    client.last_seq = first_seq - 1  # only the events of this run
    client.start()
    rng = random.Random(seed)
    try:
        time.sleep(0.2)  # let the client connect (and poll once) before the first event
        started = time.monotonic()
        last = first_seq - 1
        for _ in range(n_events):
            time.sleep(rng.uniform(0.5, 1.5) * mean_gap_s)
            last = server.publish("tick", {"n": last - first_seq + 2}).seq
        recorder.wait_for(last, timeout=5.0)
        duration = time.monotonic() - started
        # Every request counts, the first connect or poll included.
        requests = client.requests_made
    finally:
        client.stop()
    return DeliveryResult(
        client=client.name,
        poll_interval_s=poll_interval_s,
        events_sent=n_events,
        events_delivered=recorder.unique,
        requests=requests,
        duration_s=duration,
        latencies_ms=recorder.latencies_ms(),
    )


def short_polling(interval: float) -> Callable[[str, ArrivalRecorder], BackgroundClient]:
    return lambda url, rec: ShortPollingClient(url, interval=interval, recorder=rec)


def long_polling() -> Callable[[str, ArrivalRecorder], BackgroundClient]:
    return lambda url, rec: LongPollingClient(url, recorder=rec)


def push_stream() -> Callable[[str, ArrivalRecorder], BackgroundClient]:
    return lambda url, rec: NDJSONStreamClient(url, recorder=rec)


def sweep_poll_intervals(
    server: ServerThread, intervals: Sequence[float], progress=None, **kwargs
) -> list[DeliveryResult]:
    results = []
    for interval in intervals:
        results.append(measure(server, short_polling(interval), poll_interval_s=interval, **kwargs))
        if progress is not None:
            progress(results[-1])
    return results


def plot_polling_vs_push(short: list[DeliveryResult], long: DeliveryResult, push: DeliveryResult):
    """Two panels: requests per delivered event, and median delivery latency,
    against the short-polling interval; long polling and push as lines."""
    import matplotlib.pyplot as plt

    xs = [r.poll_interval_s for r in short]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = [
        ("requests_per_event", "HTTP requests per event delivered", "What it costs"),
        ("median_latency_ms", "median delivery latency (ms)", "How late events arrive"),
    ]
    for ax, (metric, ylabel, title) in zip(axes, panels, strict=True):
        ax.plot(xs, [getattr(r, metric) for r in short], "o-", label="short polling")
        ax.axhline(getattr(long, metric), color="tab:orange", ls="--", label="long polling")
        ax.axhline(getattr(push, metric), color="tab:green", ls="-", label="push stream")
        ax.set(xscale="log", yscale="log", xlabel="poll interval (s)", ylabel=ylabel, title=title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig
