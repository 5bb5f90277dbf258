"""Notebook 00's helpers: the clients it watches, where its own handler is
served, and what polling costs compared with a push stream.

``watch`` starts the three clients of "Polling and push, side by side" with
their panels. ``mount`` serves a handler the notebook defines; ``long_poller``
points a client at it; ``away_and_back`` takes pollers away while events are
published (the break-it step). ``measure_all`` sends one paced schedule of
events to short pollers at several intervals, a long poller and a push
stream at once: HTTP requests per event and delivery latency, for each.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from IPython.display import HTML

from lab.clients import (
    BackgroundClient,
    LongPollingClient,
    NDJSONStreamClient,
    ShortPollingClient,
)
from lab.recorder import ArrivalRecorder
from lab.waiting import wait_until
from lab.widgets import ArrivalPanel, TriggerPanel
from servers.events import Event
from servers.runtime import ServerThread

# The threads this notebook starts: the clean-up cell checks none is left.
THREADS = ("server-", "short-polling", "long-polling", "push-stream", "trigger-rate")


def watch(
    server: ServerThread, trigger: TriggerPanel, poll_interval: float = 1.0
) -> tuple[list[BackgroundClient], list[ArrivalPanel]]:
    """Short polling (every ``poll_interval`` s), long polling and a push
    stream on ``server``, started, expecting the events from now on; and an
    arrival panel each, with its request counter."""
    name = f"short polling (every {poll_interval:g} s)"
    clients = [
        ShortPollingClient(server.url, interval=poll_interval, recorder=ArrivalRecorder(name)),
        LongPollingClient(server.url, recorder=ArrivalRecorder("long polling")),
        NDJSONStreamClient(server.url, recorder=ArrivalRecorder("push stream")),
    ]
    panels = [_from_now_on(server, c, trigger) for c in clients]
    for client in clients:
        client.start()
    return clients, panels


def _from_now_on(server: ServerThread, client: BackgroundClient, trigger: TriggerPanel):
    client.recorder.first_seq = server.hub.log.last_seq + 1
    client.last_seq = client.recorder.first_seq - 1
    return ArrivalPanel.for_trigger(
        client.recorder, trigger, extra=lambda: {"requests": client.requests_made}
    )


# -- the notebook's own handler ------------------------------------------------
# What each server serves besides its own routes: {path: handler}.
_MOUNTS: weakref.WeakKeyDictionary[ServerThread, dict[str, type]] = weakref.WeakKeyDictionary()


def mount(server: ServerThread, path: str, handler: type) -> None:
    """Serve ``handler`` (initialized with ``hub=``) at ``path`` on the running
    server, replacing what was there: run the cell again after editing the
    handler and the new one answers. A restarted server serves it too."""
    if server not in _MOUNTS:
        _MOUNTS[server] = {}
        routes_of_its_own = server.factory

        def factory(hub):  # what ServerThread calls on each start
            app = routes_of_its_own(hub)
            app.wildcard_router.add_rules(
                [(p, h, {"hub": hub}, p) for p, h in _MOUNTS[server].items()]
            )
            return app

        server.factory = factory
    _MOUNTS[server][path] = handler

    def swap() -> None:
        # Application.wildcard_router holds the app's routes (tornado.routing's
        # RuleRouter: a list of named rules); change it on the loop.
        router = server.app.wildcard_router
        router.rules = [r for r in router.rules if r.name != path]
        router.named_rules.pop(path, None)
        router.add_rules([(path, handler, {"hub": server.hub}, path)])

    server.call(swap)


def long_poller(
    server: ServerThread, path: str, name: str, trigger: TriggerPanel, wait: float = 0.5
) -> tuple[LongPollingClient, ArrivalPanel]:
    """A long-polling client on ``path`` (the server holds each request up to
    ``wait`` s), expecting the events from now on, and its panel. Returns
    once its first request is waiting at the server (see ``start_parked``)."""
    client = LongPollingClient(server.url, wait=wait, path=path, recorder=ArrivalRecorder(name))
    panel = _from_now_on(server, client, trigger)
    start_parked(server, [client])
    return client, panel


def start_parked(server: ServerThread, pollers: Sequence[BackgroundClient]) -> None:
    """Start ``pollers`` and return once each is waiting at the server.

    "Waiting" is read from the hub: the notebook's handler subscribes while it
    holds a request, so each parked poller adds one subscriber. An event
    published before then would find a poller still on its way: exactly what
    a handler without a cursor loses, but not for the lesson to leave to chance."""
    parked = server.hub.subscriber_count
    for poller in pollers:
        poller.start()
    if not wait_until(lambda: server.hub.subscriber_count >= parked + len(pollers), timeout=5):
        raise RuntimeError("the pollers are not waiting at the server after 5 s")


def away_and_back(
    server: ServerThread, pollers: Sequence[BackgroundClient], events: int = 3
) -> list[Event]:
    """Stop ``pollers``, publish ``events`` events while they are away, start
    them again (each asks with ``?after=<the last seq it saw>``) and return
    once each is waiting at the server for what comes next."""
    stop_together(pollers)
    away = [server.publish("order.created", {"while": "away"}) for _ in range(events)]
    start_parked(server, pollers)
    return away


def stop_together(clients: Sequence[BackgroundClient]) -> None:
    """Stop clients in parallel: a long poller may be inside a request the
    server holds, and stopping it waits for that answer."""
    if not clients:
        return
    with ThreadPoolExecutor(len(clients)) as pool:
        for done in [pool.submit(c.stop) for c in clients]:
            done.result()


def cut_while_publishing(
    server: ServerThread, push: NDJSONStreamClient, events: int = 5
) -> list[Event]:
    """Cut the push client's connection and publish ``events`` events at once,
    while it is away: the cut shuts its socket before the first publish, and
    the client only reconnects after a back-off (0.2 s), asking for what came
    after its last seq. Returns once it has reconnected and caught up."""
    before = push.connections
    push.drop_connection()
    away = [server.publish("order.created", {"while": "away"}) for _ in range(events)]
    caught_up = wait_until(
        lambda: push.connections > before and push.recorder.highest_seq >= away[-1].seq, timeout=5
    )
    if not caught_up:
        raise RuntimeError("the push client did not reconnect and catch up within 5 s")
    return away


# -- what polling costs --------------------------------------------------------
@dataclass
class DeliveryResult:
    client: str
    poll_interval_s: float | None
    events_sent: int
    events_delivered: int
    requests: int
    latencies_ms: list[float] = field(repr=False)

    @property
    def requests_per_event(self) -> float:
        return self.requests / max(self.events_delivered, 1)

    @property
    def median_latency_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    def row(self) -> dict:
        return {
            "client": self.client,
            "poll interval (s)": self.poll_interval_s,
            "events": self.events_delivered,
            "requests": self.requests,
            "requests/event": round(self.requests_per_event, 2),
            "median latency (ms)": round(self.median_latency_ms, 1),
        }


def measure_all(
    server: ServerThread,
    intervals: Sequence[float],
    n_events: int = 8,
    mean_gap_s: float = 0.2,
    seed: int = 0,
) -> tuple[list[DeliveryResult], DeliveryResult, DeliveryResult]:
    """Short polling at each interval, long polling and a push stream, all at
    once: ``n_events`` events published with random gaps (mean ``mean_gap_s``)
    reach every client on the very same schedule. Returns the short-polling
    results (one per interval), the long-polling one and the push one.

    The gaps are random (seeded): events at a fixed period would line up
    with a fixed poll interval and make polling look better or worse than it
    is. Each client's requests are counted from its first connect or poll.
    """
    first_seq = server.hub.log.last_seq + 1
    runs: list[tuple[BackgroundClient, float | None]] = [
        (ShortPollingClient(server.url, interval=i), i) for i in intervals
    ]
    runs += [
        (LongPollingClient(server.url, wait=0.5), None),
        (NDJSONStreamClient(server.url), None),
    ]
    for client, _ in runs:
        client.recorder = ArrivalRecorder(client.name, first_seq)
        client.last_seq = first_seq - 1  # only the events of this run
        client.start()
    rng = random.Random(seed)
    try:
        time.sleep(0.2)  # let each client connect (and poll once) before the first event
        last = first_seq - 1
        for n in range(n_events):
            time.sleep(rng.uniform(0.5, 1.5) * mean_gap_s)
            last = server.publish("tick", {"n": n + 1}).seq
        for client, _ in runs:
            client.recorder.wait_for(last, timeout=5.0)
        requests = [client.requests_made for client, _ in runs]
    finally:
        stop_together([client for client, _ in runs])
    results = [
        DeliveryResult(
            client=client.name,
            poll_interval_s=interval,
            events_sent=n_events,
            events_delivered=client.recorder.unique,
            requests=count,
            latencies_ms=client.recorder.latencies_ms(),
        )
        for (client, interval), count in zip(runs, requests, strict=True)
    ]
    return results[:-2], results[-2], results[-1]


def table(results: Sequence[DeliveryResult]) -> HTML:
    rows = [r.row() for r in results]
    head = "".join(f"<th>{k}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{'' if v is None else v}</td>" for v in r.values()) + "</tr>"
        for r in rows
    )
    return HTML(f"<table><tr>{head}</tr>{body}</table>")


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


# -- clean up ------------------------------------------------------------------
def close(
    trigger: TriggerPanel, panels: Sequence[ArrivalPanel], clients: Sequence[BackgroundClient]
) -> None:
    """Stop the trigger's rate thread, detach the panels, stop the clients."""
    trigger.close()
    for panel in panels:
        panel.close()
    stop_together(clients)


def leftover_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREADS)]
