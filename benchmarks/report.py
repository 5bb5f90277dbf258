"""Render the saved benchmark results as the README's Markdown tables.

    python -m benchmarks.report            # print the tables
    python -m benchmarks.report --readme   # rewrite README's measured section

The README's figures come from here, from the JSON each benchmark wrote, so
no number in it is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BEGIN = "<!-- measured:begin (python -m benchmarks.report --readme) -->"
END = "<!-- measured:end -->"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(d: dict) -> str:
    m = d.get("machine", {})
    load_avg = (
        m.get("load_average_1min_at_start")
        or m.get("load_avg_at_start")
        or m.get("load_average_at_start")
    )
    if isinstance(load_avg, list):
        load_avg = load_avg[0]
    parts = [f"{m.get('cpus', '?')} cores", f"Python {m.get('python', '?')}", m.get("platform", "")]
    if load_avg is not None:
        parts.append(f"load average {float(load_avg):.1f} at start")
    return f"Command: `{d.get('command')}`; machine: " + ", ".join(p for p in parts if p) + "."


def choosing(d: dict) -> str:
    rows = []
    for t in d["transports"]:
        lat = t.get("latency_ms", {})
        wire = t.get("bytes_per_event", {})
        rows.append(
            [
                t.get("label", t.get("transport")),
                lat.get("p50"),
                lat.get("p95"),
                lat.get("p99"),
                lat.get("max"),
                t.get("throughput_eps"),
                wire.get("from_consumer"),
                wire.get("to_consumer"),
                t.get("connections_opened"),
                t.get("server_cpu_s_per_1000"),
            ]
        )
    header = [
        "transport",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "events/s",
        "bytes/event from consumer",
        "bytes/event to consumer",
        "connections",
        "server CPU s / 1,000 events",
    ]
    return table(header, rows)


# Each topic builds its own table rows from its own JSON fields; scaling()
# below has the same shape (duplicates pairs them), not the same fields.
def webhooks(d: dict) -> str:
    rows = [
        [
            r["receivers"],
            r["subscribers"],
            r["deliveries_per_s"],
            r["latency_p50_ms"],
            r["latency_p99_ms"],
            r["request_bytes_per_delivery"],
        ]
        for r in d["results"]
    ]
    return table(
        ["receivers", "subscribers", "deliveries/s", "p50 ms", "p99 ms", "request bytes"], rows
    )


# The baseline: an echo handler for round trips and the flood, a loop of
# write_message over a plain set of connections for fan-out and memory.
BARE = "bare Tornado (echo; broadcast loop)"


def websockets(d: dict) -> str:
    rtt, mem = d["rtt"], d["memory_per_idle_connection_bytes"]
    fan = d["fanout_ms"]
    sizes = sorted(fan["room"], key=int)  # 1 to 1,000 clients; to 100 in a --quick run
    rows = [
        [
            name,
            rtt[key]["round_trips_per_s"],
            rtt[key]["p50_ms"],
            rtt[key]["p99_ms"],
            *(fan[f][n]["p50_ms"] for n in sizes),
            mem[f]["rss"] / 1024,
        ]
        for name, key, f in (("room", "room", "room"), (BARE, "bare_echo", "bare"))
    ]
    header = ["", "round trips/s", "RTT p50 ms", "RTT p99 ms"]
    header += [f"fan-out p50 ms, {int(n):,} client{'' if n == '1' else 's'}" for n in sizes]
    header.append("KiB RSS per idle connection")
    flood, one = d["flood"], d["server_cpu_us_per_message_one_at_a_time"]
    per_message = table(
        [
            "",
            "flood messages/s",
            "server CPU us/message, flood",
            "server CPU us/message, one at a time",
        ],
        [
            [
                name,
                flood["messages_per_s"][f],
                flood["server_cpu_us_per_message"][f],
                one[f],
            ]
            for name, f in (("room", "room"), (BARE, "bare"))
        ],
    )
    o = d["room_overhead_pct"]
    ok = o["within_target"]
    labels = {
        "server_cpu_per_message": "server CPU per message (flood)",
        "server_cpu_per_message_one_at_a_time": "server CPU per message (one at a time)",
        "messages_per_s": "flood throughput",
        "rtt_p50": "RTT p50",
    }
    labels.update(
        {
            k: f"fan-out p50 at {int(k.rsplit('_', 1)[1]):,} clients"
            for k in o
            if k.startswith("fanout")
        }
    )
    spread = o.get("per_round_range", {})

    def one(key: str, label: str) -> str:
        rounds = (
            f", single rounds {spread[key][0]:+.0f}% to {spread[key][1]:+.0f}%"
            if key in spread
            else ""
        )
        return f"{label} {o[key]:+.1f}% ({'within' if ok[key] else 'outside'} 10%{rounds})"

    verdict = "; ".join(one(key, label) for key, label in labels.items() if key in o)
    return "\n\n".join(
        [
            table(header, rows),
            per_message,
            f"The room's overhead over bare Tornado (positive = the room costs more), "
            f"median of {d['rounds']} rounds in which the client alternates room and "
            f"baseline: {verdict}.",
        ]
    )


def streaming(d: dict) -> str:
    return table(
        ["measure", "chunked NDJSON", "SSE"],
        [[r["measure"], r.get("chunked NDJSON"), r.get("SSE")] for r in d["summary_rows"]],
    )


# Same shape as webhooks() above: a row per run, other fields.
def scaling(d: dict) -> str:
    runs = [
        [
            r["kind"],
            r["connections_open"],
            r["kib_per_idle_connection"],
            r["server_fds"],
            r["connect_seconds"],
        ]
        for r in d["runs"]
    ]
    fan = [
        [f["kind"], f["mode"], f["n"], f["fanout_ms"], f["p50_ms"], f["p99_ms"], f["all_delivered"]]
        for f in d["fanout"]
    ]
    r = d["redis_scaleout"]
    redis = (
        f"Redis scale-out, 2 processes, {r['connections']:,} clients, {r['publishes']} publishes: "
        f"cross-process delivery p50 {r['cross_process_p50_ms']:.0f} ms, "
        f"p99 {r['cross_process_p99_ms']:.0f} ms "
        f"(same-process clients: p50 {r['publisher_process_p50_ms']:.0f} ms, "
        f"p99 {r['publisher_process_p99_ms']:.0f} ms)."
    )
    return "\n\n".join(
        [
            table(
                ["kind", "connections", "KiB per idle connection", "server fds", "connect s"], runs
            ),
            table(
                [
                    "kind",
                    "mode",
                    "clients",
                    "server write ms",
                    "arrival p50 ms",
                    "arrival p99 ms",
                    "all got it",
                ],
                fan,
            ),
            redis,
        ]
    )


def weather(d: dict) -> str:
    """Median latency per preset and transport, with what did not arrive."""
    labels = list(dict.fromkeys(r["label"] for r in d["rows"]))
    presets = list(dict.fromkeys(r["preset"] for r in d["rows"]))
    cell = {(r["preset"], r["label"]): r for r in d["rows"]}

    def shown(r: dict) -> str:
        if r["delivered"] < r["events"]:
            return f"{r['delivered']}/{r['events']} delivered"
        return f"{r['latency_ms']['p50']:.0f}"

    rows = [[p, *(shown(cell[p, label]) for label in labels)] for p in presets]
    m = d["method"]
    lost = sum(r["lost"] for r in d["rows"] if r["delivered"] == r["events"])
    twice = sum(r["processed_twice"] for r in d["rows"])
    short = [f"{r['label']} ({r['preset']})" for r in d["rows"] if r["delivered"] < r["events"]]
    held = f" Not delivered: {', '.join(short)}." if short else ""
    return (
        f"Median latency in ms through `lab/weather/relay.py` ({m['events']} events at "
        f"{m['rate_eps']:g}/s per preset, heartbeats every {m['heartbeat_s']:g} s; "
        f"{m['time_compression']}). Wherever every event arrived: lost {lost}, processed "
        f"twice {twice}.{held}"
        "\n\n" + table(["preset", *labels], rows)
    )


SECTIONS = [
    ("choosing", "All transports, same workload (notebook 05)", choosing),
    ("webhooks", "Webhooks: signed deliveries (notebook 01)", webhooks),
    ("websockets", "WebSockets: the room against bare Tornado handlers (notebook 02)", websockets),
    ("streaming", "HTTP streaming: chunked NDJSON and SSE (notebook 03)", streaming),
    ("scaling", "Scaling: 10,000 connections in one process (notebook 04)", scaling),
    ("weather", "Network weather: six transports, five bad networks (notebook 06)", weather),
]


def render() -> str:
    out = []
    for name, title, fn in SECTIONS:
        d = load(name)
        if d is None:
            continue
        try:
            body = fn(d)
        except (KeyError, TypeError) as exc:  # a benchmark changed its JSON: say so
            body = f"(benchmarks/results/{name}.json has an unexpected shape: {exc!r})"
        out.append(f"#### {title}\n\n{body}\n\n{machine_line(d)}")
    return "\n\n".join(out)


def update_readme(text: str) -> str:
    readme = ROOT / "README.md"
    current = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(current):
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block")
    updated = pattern.sub(lambda _m: f"{BEGIN}\n\n{text}\n\n{END}", current)
    readme.write_text(updated, encoding="utf-8")
    return updated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="rewrite README's measured section")
    args = parser.parse_args()
    text = render()
    if args.readme:
        update_readme(text)
    print(text)


if __name__ == "__main__":
    main()
