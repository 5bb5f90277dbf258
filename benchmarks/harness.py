"""The harness: the same event sequence over every transport, measured alike.

For each transport (``drivers.DRIVERS``), in a fresh server and client:

1. **Warm-up** (excluded): ``warmup`` events at the paced rate. Connection
   set-up (TCP, HTTP upgrade, the first stream response) and Python's
   first-call costs happen here and are not counted.
2. **Paced phase** (measured): ``events`` events at ``rate`` events/s, the
   same payload for all. Latency per event is ``received_ns - sent_ns``:
   ``sent_ns`` is stamped by ``EventHub.publish`` and ``received_ns`` by the
   client's ``ArrivalRecorder``, both ``time.monotonic_ns()`` in this one
   process, so no clock sync is involved. Bytes on the wire in each
   direction come from the ``CountingRelay`` (counted at the socket,
   headers and framing included) and are divided by the events of this
   phase; server CPU is the event source's server thread's
   ``time.thread_time()`` over this phase, per 1,000 events.
3. **Burst** (throughput): ``burst`` events published back to back;
   throughput = burst / (last arrival - first publish).

``connections_opened`` counts every TCP connection the relay accepted over
the whole run (warm-up and burst included).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable

from .drivers import DRIVERS, LONG_POLL_WAIT_S, SHORT_POLL_INTERVAL_S, Driver
from .stats import latency_summary

EVENT_TYPE = "bench.tick"
# The same payload for every transport (~100 bytes as JSON): a price tick.
PAYLOAD = {
    "symbol": "ACME",
    "price": "101.25",
    "volume": 300,
    "venue": "XLAB",
    "note": "same payload for every transport",
}

MODES = {
    # events, warm-up, paced rate (events/s), burst, wait timeout (s)
    "quick": {"events": 120, "warmup": 20, "rate": 200.0, "burst": 150, "timeout": 10.0},
    "full": {"events": 2000, "warmup": 200, "rate": 200.0, "burst": 500, "timeout": 30.0},
}
# Event rates for the cost sweep, and how long each rate runs (seconds).
COST_RATES = {"quick": (4.0, 40.0, 400.0), "full": (1.0, 5.0, 20.0, 100.0, 500.0)}
COST_WINDOW_S = {"quick": 0.5, "full": 3.0}
COST_TRANSPORTS = ("short_polling", "long_polling", "websocket", "sse")
CLOCK = (
    "time.monotonic_ns() in one process: sent_ns stamped by EventHub.publish, received_ns "
    "by the client's ArrivalRecorder; exact, no cross-machine clock"
)


def _publish_paced(driver: Driver, n: int, rate: float) -> tuple[int, int]:
    """Publish ``n`` events at ``rate``/s; return (first seq, last seq)."""
    start = time.monotonic()
    first = last = 0
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        event = driver.publish(EVENT_TYPE, PAYLOAD)
        first = first or event.seq
        last = event.seq
    return first, last


def _wait_arrived(driver: Driver, last_seq: int, timeout: float) -> bool:
    return driver.recorder.wait_for(last_seq, timeout)


def measure(
    key: str,
    events: int,
    warmup: int,
    rate: float,
    burst: int,
    timeout: float = 30.0,
    on_phase: Callable[[str], None] | None = None,
) -> dict:
    """Run the three phases for one transport and return its results row."""
    phase = on_phase or (lambda name: None)
    driver = DRIVERS[key]()
    with driver:
        phase("warm-up")
        _, last = _publish_paced(driver, warmup, rate)
        _wait_arrived(driver, last, timeout)

        phase("paced")
        c0, cpu0, req0 = driver.counts(), driver.server_cpu(), driver.requests_made
        first, last = _publish_paced(driver, events, rate)
        arrived = _wait_arrived(driver, last, timeout)
        # A poll or a delivery may still be in flight for the last event;
        # the relay counters are read once it has fully arrived.
        c1, cpu1, req1 = driver.counts(), driver.server_cpu(), driver.requests_made
        measured = {
            a.seq: a for a in driver.recorder.arrivals if first <= a.seq <= last and not a.duplicate
        }
        latencies = [measured[s].latency_ms for s in sorted(measured)]
        duplicates = sum(
            1 for a in driver.recorder.arrivals if first <= a.seq <= last and a.duplicate
        )

        phase("burst")
        throughput = None
        if burst:
            sent = [driver.publish(EVENT_TYPE, PAYLOAD) for _ in range(burst)]
            if _wait_arrived(driver, sent[-1].seq, timeout):
                lo, hi = sent[0].seq, sent[-1].seq
                last_ns = max(a.received_ns for a in driver.recorder.arrivals if lo <= a.seq <= hi)
                elapsed = (last_ns - sent[0].sent_ns) / 1e9
                throughput = burst / elapsed if elapsed > 0 else None
        total = driver.counts()
    delta = c1 - c0
    requests = None if req0 is None else req1 - req0
    return {
        "transport": key,
        "label": driver.label,
        "events": events,
        "warmup_events": warmup,
        "delivered": len(latencies),
        "lost": events - len(latencies),
        "duplicates": duplicates,
        "all_arrived": arrived,
        "latency_ms": latency_summary(latencies),
        "latencies_ms": [round(v, 4) for v in latencies],
        "throughput_eps": throughput,
        "burst_events": burst,
        "bytes_per_event": {
            "to_consumer": delta.to_consumer / events,
            "from_consumer": delta.from_consumer / events,
        },
        "connections_opened": total.connections,
        "requests_made": requests,
        "server_cpu_s_per_1000": max(0.0, cpu1 - cpu0) / events * 1000,
        "notes": driver.notes,
    }


def cost_vs_rate(
    rates: Iterable[float],
    transports: Iterable[str] = COST_TRANSPORTS,
    window_s: float = 1.0,
    timeout: float = 10.0,
    progress: Callable[[], None] | None = None,
) -> list[dict]:
    """Bytes on the wire (both directions) and requests per event as the
    event rate grows: each rate runs for about ``window_s`` seconds (at
    least 3 events) on one connected client per transport."""
    rows = []
    for key in transports:
        with DRIVERS[key]() as driver:
            _, last = _publish_paced(driver, 3, 50.0)  # warm-up, excluded
            _wait_arrived(driver, last, timeout)
            for rate in rates:
                n = max(3, round(rate * window_s))
                c0, req0, t0 = driver.counts(), driver.requests_made, time.monotonic()
                _, last = _publish_paced(driver, n, rate)
                # Wait out the last inter-event gap too, so every rate is
                # measured over n full intervals (a poller keeps polling).
                time.sleep(max(0.0, t0 + n / rate - time.monotonic()))
                _wait_arrived(driver, last, timeout)
                c1, req1 = driver.counts(), driver.requests_made
                d = c1 - c0
                rows.append(
                    {
                        "transport": key,
                        "rate_eps": rate,
                        "events": n,
                        "seconds": time.monotonic() - t0,
                        "bytes_per_event": (d.to_consumer + d.from_consumer) / n,
                        "requests": None if req0 is None else req1 - req0,
                        "connections": d.connections,
                    }
                )
                if progress:
                    progress()
    return rows


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_start"] = round(os.getloadavg()[0], 2)
    return info


def run(
    mode: str = "quick",
    transports: Iterable[str] | None = None,
    cost: bool = True,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Run the harness and return the results document (see ``schema``)."""
    import json

    from tqdm.auto import tqdm

    settings = MODES[mode]
    wanted = set(transports or DRIVERS)
    unknown = wanted - set(DRIVERS)
    if unknown:
        raise ValueError(f"unknown transports {sorted(unknown)}; known: {list(DRIVERS)}")
    keys = [k for k in DRIVERS if k in wanted]  # always the same order
    rates = COST_RATES[mode] if cost else ()
    steps = len(keys) * 3 + len(rates) * len(COST_TRANSPORTS)
    doc = {
        "schema": "event-api-lab/bench/1",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command
        or "python -m benchmarks.choosing" + (" --quick" if mode == "quick" else ""),
        "mode": mode,
        "machine": machine(),
        "method": {
            "clock": CLOCK,
            "warmup": f"the first {settings['warmup']} events of each transport are excluded "
            "(connection set-up happens then)",
            "events": settings["events"],
            "rate_eps": settings["rate"],
            "burst": settings["burst"],
            "payload": PAYLOAD,
            "payload_bytes": len(json.dumps(PAYLOAD, separators=(",", ":"))),
            "event_type": EVENT_TYPE,
            "byte_counting": "a counting TCP relay on 127.0.0.1 between consumer and event "
            "source (lab/wire/relay.py): every byte each side wrote, headers and framing "
            "included; the relay adds one loopback hop to every transport alike",
            "short_poll_interval_s": SHORT_POLL_INTERVAL_S,
            "long_poll_wait_s": LONG_POLL_WAIT_S,
            "server_cpu": "time.thread_time() read on the event source's server thread "
            "(webhooks: the provider), over the paced phase",
        },
        "transports": [],
    }
    with tqdm(total=steps, desc="benchmark", disable=not progress, leave=True) as bar:
        for key in keys:

            def on_phase(name: str, key: str = key) -> None:
                bar.set_postfix_str(f"{key}: {name}")
                if name != "warm-up":
                    bar.update(1)

            row = measure(key, on_phase=on_phase, **settings)
            bar.update(1)
            doc["transports"].append(row)
        if rates:
            bar.set_postfix_str("cost vs rate")
            doc["cost_vs_rate"] = cost_vs_rate(
                rates, window_s=COST_WINDOW_S[mode], progress=lambda: bar.update(1)
            )
    if hasattr(os, "getloadavg"):
        doc["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    return doc


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(doc: dict) -> str:
    """The results as a Markdown table (what the README shows)."""
    head = (
        "| transport | p50 ms | p95 ms | p99 ms | max ms | events/s (burst) | "
        "B/event to consumer | B/event from consumer | connections | "
        "server CPU s/1k events | lost |"
    )
    lines = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    for r in doc["transports"]:
        lat, b = r["latency_ms"], r["bytes_per_event"]
        lines.append(
            f"| {r['label']} | {_fmt(lat['p50'], '.2f')} | {_fmt(lat['p95'], '.2f')} | "
            f"{_fmt(lat['p99'], '.2f')} | {_fmt(lat['max'], '.2f')} | "
            f"{_fmt(r['throughput_eps'], ',.0f')} | {b['to_consumer']:,.0f} | "
            f"{b['from_consumer']:,.0f} | {r['connections_opened']} | "
            f"{r['server_cpu_s_per_1000']:.3f} | {r['lost']} |"
        )
    return "\n".join(lines)


def cost_table(doc: dict) -> str:
    rows = doc.get("cost_vs_rate") or []
    if not rows:
        return ""
    rates = sorted({r["rate_eps"] for r in rows})
    head = "| bytes per event (both directions) | " + " | ".join(f"{r:g}/s" for r in rates) + " |"
    lines = [head, "|" + "|".join("---" for _ in range(len(rates) + 1)) + "|"]
    for key in dict.fromkeys(r["transport"] for r in rows):
        cells = {r["rate_eps"]: r["bytes_per_event"] for r in rows if r["transport"] == key}
        lines.append(f"| {key} | " + " | ".join(f"{cells[r]:,.0f}" for r in rates) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    from pathlib import Path

    from . import schema

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.choosing",
        description="Every transport, the same events, measured alike (see benchmarks/harness.py).",
    )
    parser.add_argument("--quick", action="store_true", help="a small run (the notebook's)")
    parser.add_argument("--json", metavar="PATH", help="where to write the results JSON")
    parser.add_argument(
        "--only", nargs="+", choices=list(DRIVERS), help="measure only these transports"
    )
    parser.add_argument("--no-cost", action="store_true", help="skip the cost-vs-rate sweep")
    parser.add_argument(
        "--weather",
        nargs="+",
        metavar="PRESET",
        help="through network-weather presets instead (quote names; 'all': every preset; "
        "see benchmarks/weather.py)",
    )
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    command = "python -m benchmarks.choosing " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    if args.weather:
        from lab.weather.presets import PRESETS

        from . import weather

        unknown = [n for n in args.weather if n not in PRESETS and n != "all"]
        if unknown:
            parser.error(f"unknown presets {unknown}; known: {list(PRESETS)} or all")
        return weather.main(args.weather, args.quick, args.json, command.strip())
    doc = run(mode, args.only, cost=not args.no_cost, command=command.strip())
    print()
    print(table(doc))
    if doc.get("cost_vs_rate"):
        print()
        print(cost_table(doc))
    print()
    print(f"warm-up: {doc['method']['warmup']}; clock: {CLOCK}")
    default = Path(__file__).resolve().parent / "results"
    path = (
        Path(args.json) if args.json else default / f"choosing{'_quick' if args.quick else ''}.json"
    )
    schema.write(doc, path)
    print(f"results written to {path}")
    return 0
