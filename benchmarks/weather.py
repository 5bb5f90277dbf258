"""``python -m benchmarks.choosing --weather PRESET [PRESET ...]`` (or ``all``):
the six transports through each network-weather preset, one row per preset
and transport.

Method (the same for every preset and transport):

* a fresh ``lab.weather.race.Race``: the lab's server and client for each
  transport, each behind its own ``WeatherRelay`` on 127.0.0.1, all relays
  sharing the preset's dials. Slow timers are the notebook's compressed ones
  (``presets.DEMO_FACTOR``: a 30 s NAT timeout is 1 s, a flap every 30 s is
  one a second); latency, jitter and bandwidth are as stated. Streams send
  heartbeats every 0.5 s (15 s real) and give a connection up after 2.5
  silent intervals;
* ``events`` events at ``rate`` per second, with a quiet pause of
  ``QUIET_S`` in the middle (longer than the NAT's compressed timeout);
* then up to ``SETTLE_S`` for late arrivals. Latency is publish to first
  arrival, one process, ``time.monotonic_ns()``; bytes per event are every
  byte through the relay (both directions, heartbeats and reconnects
  included) over the events of the run.

A relay above TCP cannot drop packets (TCP retransmits them); it models
delay, stalls, silent drops, resets and buffering. Notebook 06 shows each.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from lab.weather.presets import DEMO_FACTOR, PRESETS, preset
from lab.weather.race import Race

from .stats import latency_summary

SCHEMA_ID = "event-api-lab/bench-weather/1"
MODES = {"quick": {"events": 20, "rate": 10.0}, "full": {"events": 60, "rate": 10.0}}
QUIET_S = 1.2
SETTLE_S = 5.0
HEARTBEAT_S = 0.5


def measure(name: str, events: int, rate: float) -> list[dict]:
    """One preset: a row per transport."""
    with Race(preset(name).demo(), heartbeat_s=HEARTBEAT_S) as race:
        rows = race.run(events, 1 / rate, quiet_s=QUIET_S, settle_s=SETTLE_S, label=name)
        latencies = {
            key: sorted(
                a.latency_ms
                for a in lane.recorder.arrivals
                if not a.duplicate and a.seq > lane.server.hub.log.last_seq - events
            )
            for key, lane in race.lanes.items()
        }
    out = []
    for r in rows:
        lat = latencies[r["transport"]]
        out.append(
            {
                "preset": name,
                "transport": r["transport"],
                "label": r["label"],
                "events": r["events"],
                "delivered": r["delivered"],
                "lost": r["lost"],
                "arrived_twice": r["arrived_twice"],
                "processed_twice": r["processed_twice"],
                "latency_ms": latency_summary(lat) if lat else None,
                "connections_opened": r["connections"],
                "retries": r["retries"],
                "silent_drops": r["silent_drops"],
                "noticed_after_s": r["notice_s"],
                "stuck": r["stuck"],
                "bytes_per_event": r["bytes"] / r["events"],
            }
        )
    return out


def run(names: list[str], mode: str = "quick", command: str = "") -> dict:
    from .harness import machine

    settings = MODES[mode]
    doc = {
        "schema": SCHEMA_ID,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "mode": mode,
        "machine": machine(),
        "method": {
            "events": settings["events"],
            "rate_eps": settings["rate"],
            "quiet_pause_s": QUIET_S,
            "settle_s": SETTLE_S,
            "heartbeat_s": HEARTBEAT_S,
            "time_compression": f"idle timeouts, flaps and heartbeats divided by {DEMO_FACTOR:g}",
            "presets": {
                n: {"dials": vars(preset(n).demo()), "source": preset(n).source} for n in names
            },  # fmt: skip
            "relay": "lab/weather/relay.py on 127.0.0.1, one per transport",
        },
        "rows": [],
    }
    for name in names:
        doc["rows"].extend(measure(name, settings["events"], settings["rate"]))
    return doc


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(doc: dict) -> str:
    head = (
        "| preset | transport | delivered | lost | processed twice | p50 ms | p95 ms | max ms | "
        "new connections | retries | silent drops | noticed after s | B/event |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in doc["rows"]:
        lat = r["latency_ms"] or {}
        notice = "never (stuck)" if r["stuck"] else _fmt(r["noticed_after_s"], ".2f")
        lines.append(
            f"| {r['preset']} | {r['label']} | {r['delivered']}/{r['events']} | {r['lost']} | "
            f"{r['processed_twice']} | {_fmt(lat.get('p50'), '.0f')} | "
            f"{_fmt(lat.get('p95'), '.0f')} | {_fmt(lat.get('max'), '.0f')} | "
            f"{r['connections_opened']} | {r['retries']} | {r['silent_drops']} | {notice} | "
            f"{r['bytes_per_event']:,.0f} |"
        )
    return "\n".join(lines)


def main(names: list[str], quick: bool, json_path: str | None, command: str) -> int:
    if names == ["all"]:
        names = list(PRESETS)
    doc = run(names, "quick" if quick else "full", command)
    print(table(doc))
    default = Path(__file__).resolve().parent / "results" / "weather.json"
    path = Path(json_path) if json_path else default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"results written to {path}")
    return 0
