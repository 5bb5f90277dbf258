"""Scaling benchmark: 10,000 connections in one process, and Redis scale-out.

    python -m benchmarks.scaling            # full run (10,000 connections)
    python -m benchmarks.scaling --quick    # 1,000 connections, a smoke test

For WebSocket and then SSE: one ``servers.fanout`` server *process* (so its
memory is its own), 10,000 clients from 2 load-generator processes (one per core here), then

- memory per idle connection: server RSS after connecting minus before,
  divided by the number of connections (target: at most 20 KiB);
- broadcast to all, naive and encode-once: server-side fan-out time and
  per-client arrival (``monotonic_ns`` at arrival minus the event's
  ``sent_ns``, one system-wide clock), p50/p99/max over all clients
  (target: p99 within 1 s), and whether every client got it.

Then two server processes sharing a Redis backplane (a throwaway
``redis-server``): clients split round-robin, events published on A, arrival
p50/p99 for A's clients (through Redis and back) and B's (cross-process).

Figures are machine-dependent: the clients run on the same cores as the
server (2 cores here, shared with other work), so they compete with it.
Results go to ``benchmarks/results/scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import psutil

from lab.scale.cluster import ServerProcess
from lab.scale.loadgen import LoadGenerator
from lab.scale.redis_server import RedisServer, available

RESULTS = Path(__file__).parent / "results" / "scaling.json"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def settle(server: ServerProcess, key: str, n: int, timeout: float = 30) -> dict:
    """Wait until the server counts ``n`` connections of ``key`` (ws/sse)."""
    end = time.monotonic() + timeout
    health: dict = {}
    while time.monotonic() < end:
        health = server.health()[1]
        if health[key] >= n:
            break
        time.sleep(0.2)
    return health


def one_process(kind: str, n: int, repeats: int, workers: int) -> dict:
    server = ServerProcess(f"bench-{kind}").start()
    try:
        time.sleep(0.5)
        base = rss(server.pid)
        fds_before = psutil.Process(server.pid).num_fds()
        started = time.monotonic()
        with LoadGenerator(server.url, kind=kind, processes=workers, lifetime=900) as gen:
            opened = gen.connect(n, progress=sys.stderr.isatty(), timeout=300)
            connect_s = time.monotonic() - started
            health = settle(server, kind, n)
            time.sleep(1.0)
            held = rss(server.pid)
            fds = psutil.Process(server.pid).num_fds()
            result = {
                "kind": kind,
                "connections_requested": n,
                "connections_open": opened,
                "server_counted": health[kind],
                "connect_seconds": connect_s,
                "server_rss_before_mib": base / 2**20,
                "server_rss_after_mib": held / 2**20,
                "kib_per_idle_connection": (held - base) / 1024 / max(1, opened),
                "server_fds": fds,
                "server_fds_before": fds_before,
                "broadcasts": [],
            }
            for mode in ("naive", "once"):
                server.set_mode(mode)
                for i in range(repeats):
                    seq = server.publish("broadcast", {"i": i, "text": "x" * 64})
                    d = gen.report(seq, timeout=60)
                    fan = server.health()[1]["last_fanout"]
                    assert fan.get("seq") == seq, (fan, seq)
                    result["broadcasts"].append(
                        {
                            "mode": mode,
                            "seq": seq,
                            "delivered": d.delivered,
                            "clients": d.clients,
                            "missing": d.missing,
                            "fanout_ms": fan["seconds"] * 1000,
                            "p50_ms": d.p50_ms,
                            "p99_ms": d.p99_ms,
                            "max_ms": max(d.latencies_ms, default=float("nan")),
                        }
                    )
                    time.sleep(0.5)
        return result
    finally:
        server.stop()


def redis_scaleout(n: int, publishes: int, workers: int) -> dict:
    if not available():
        return {"skipped": "redis-server is not installed"}
    with RedisServer() as redis:
        a = ServerProcess("A", redis_url=redis.url).start()
        b = ServerProcess("B", redis_url=redis.url).start()
        try:
            with LoadGenerator([a.url, b.url], kind="ws", processes=workers, lifetime=900) as gen:
                opened = gen.connect(n, progress=sys.stderr.isatty(), timeout=300)
                settle(a, "ws", n // 2)
                settle(b, "ws", n // 2)
                same, cross, complete = [], [], 0
                for i in range(publishes):
                    seq = a.publish("news", {"i": i})
                    d = gen.report(seq, timeout=30)
                    same += d.latencies_ms_by_server.get(a.url, [])
                    cross += d.latencies_ms_by_server.get(b.url, [])
                    complete += d.delivered == opened
                    time.sleep(0.1)
            return {
                "connections": opened,
                "publishes": publishes,
                "broadcasts_delivered_to_all": complete,
                "publisher_process_p50_ms": pct(same, 50),
                "publisher_process_p99_ms": pct(same, 99),
                "cross_process_p50_ms": pct(cross, 50),
                "cross_process_p99_ms": pct(cross, 99),
                "samples": len(same) + len(cross),
            }
        finally:
            a.stop()
            b.stop()


def summarise(run: dict) -> list[dict]:
    rows = []
    for mode in ("naive", "once"):
        bs = [b for b in run["broadcasts"] if b["mode"] == mode]
        rows.append(
            {
                "kind": run["kind"],
                "mode": mode,
                "n": run["connections_open"],
                "fanout_ms": statistics.median(b["fanout_ms"] for b in bs),
                "p50_ms": statistics.median(b["p50_ms"] for b in bs),
                "p99_ms": statistics.median(b["p99_ms"] for b in bs),
                "worst_p99_ms": max(b["p99_ms"] for b in bs),
                "all_delivered": all(b["delivered"] == b["clients"] for b in bs),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 connections")
    parser.add_argument("-n", type=int, default=None, help="connections (default 10,000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--redis-clients", type=int, default=None)
    args = parser.parse_args()
    n = args.n or (1000 if args.quick else 10_000)
    redis_n = args.redis_clients or (200 if args.quick else 2000)
    command = "python -m benchmarks.scaling" + (" --quick" if args.quick else "")

    runs = [one_process(kind, n, args.repeats, args.workers) for kind in ("ws", "sse")]
    fan = [row for run in runs for row in summarise(run)]
    scaleout = redis_scaleout(redis_n, 20, min(args.workers, 2))
    out = {
        "command": command,
        "machine": {
            "cpus": psutil.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "clients and server share the same cores; other work was running",
        },
        "clock": "time.monotonic_ns (system-wide): arrival in client process - sent_ns at publish",
        "targets": {"kib_per_idle_connection": 20, "broadcast_p99_ms": 1000},
        "runs": runs,
        "fanout": fan,
        "redis_scaleout": scaleout,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))

    print(f"\n{command}  ({psutil.cpu_count()} CPUs)")
    print(f"{'kind':5} {'conns':>6} {'KiB/conn':>9} {'fds':>6} {'connect s':>9}")
    for r in runs:
        print(
            f"{r['kind']:5} {r['connections_open']:>6} {r['kib_per_idle_connection']:>9.1f} "
            f"{r['server_fds']:>6} {r['connect_seconds']:>9.1f}"
        )
    print(f"\n{'kind':5} {'mode':6} {'N':>6} {'fan-out ms':>10} {'p50 ms':>8} {'p99 ms':>8} all")
    for r in fan:
        print(
            f"{r['kind']:5} {r['mode']:6} {r['n']:>6} {r['fanout_ms']:>10.1f} "
            f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['all_delivered']}"
        )
    if "skipped" in scaleout:
        print("\nRedis scale-out:", scaleout["skipped"])
    else:
        print(
            f"\nRedis, 2 processes, {scaleout['connections']} clients, "
            f"{scaleout['publishes']} events published on A: "
            f"A's clients p50 {scaleout['publisher_process_p50_ms']:.1f} / p99 "
            f"{scaleout['publisher_process_p99_ms']:.1f} ms; B's (cross-process) p50 "
            f"{scaleout['cross_process_p50_ms']:.1f} / p99 "
            f"{scaleout['cross_process_p99_ms']:.1f} ms; "
            f"delivered to all {scaleout['broadcasts_delivered_to_all']}/{scaleout['publishes']}"
        )
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
