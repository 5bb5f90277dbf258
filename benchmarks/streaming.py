"""HTTP streaming benchmark: chunked NDJSON and SSE from one Tornado server.

    python -m benchmarks.streaming            # full run
    python -m benchmarks.streaming --quick    # smaller counts, a smoke test

Measured, for chunked NDJSON (``/stream/ndjson``) and SSE (``/stream/sse``):

- **throughput to 1 subscriber**: N events published as fast as one thread
  can (``server.publish``, the path a widget click takes), time from the
  first ``sent_ns`` to the arrival of the last event at the reader;
- **fan-out** to 1, 10, 100 and 1,000 subscribers: the same, events x
  subscribers deliveries;
- **one-way latency** p50/p99: events paced 1 ms apart; latency is the
  reader's ``monotonic_ns()`` when the bytes arrived minus the event's
  ``sent_ns``. Both are CLOCK_MONOTONIC, which on Linux is one clock for
  every process, so the reader may run in another process;
- **bytes on the wire per event**: every byte the reader's socket received
  after the response headers (chunk framing and SSE field names included),
  divided by the events, in the paced run (one chunk per event);
- the **buffering** runs of notebook 03 through the tiny proxy and, when
  installed, a real jupyter-server-proxy.

Readers: asyncio raw-socket readers in a *separate process* (so they do not
share the server's GIL), plus the collection's own clients
(``NDJSONStreamClient``, ``ReconnectingSSEClient``: requests and sseclient-py
in a thread of the server's process) for the latency a notebook sees.

The server is the notebooks' ``servers.streaming`` + ``servers.sse`` app in
a ``ServerThread``, heartbeats off, per-subscriber queues raised to 200,000
events so that a burst measures throughput rather than the slow-reader
policy. Warm-up (one connection and 200 events per transport) is excluded.
Figures depend on the machine and on what else runs on it (see ``machine``
in the JSON). Results go to ``benchmarks/results/streaming.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import re
import sys
import time
from pathlib import Path

import tornado

from lab.clients import NDJSONStreamClient
from lab.clients.sse import ReconnectingSSEClient
from lab.lessons import http_streaming as lesson
from lab.recorder import ArrivalRecorder
from lab.scale.jupyter_proxy import JupyterServerProxy
from lab.waiting import wait_until
from servers import runtime, sse, streaming, streaming_buffering
from servers.common import app_with
from servers.runtime import ServerThread

RESULTS = Path(__file__).parent / "results" / "streaming.json"
PAYLOAD = {"symbol": "ACME", "price": 101.25, "qty": 100}
SENT = re.compile(rb'"sent_ns":(\d+)')
PATHS = {"chunked": "/stream/ndjson?after={after}", "sse": "/stream/sse?heartbeat=0"}
MARKERS = {"chunked": b'{"seq"', "sse": b"data: {"}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


# -- the reader process -----------------------------------------------------------


def _reader_main(port, path, marker, subs, events, latency, conn) -> None:
    try:
        conn.send(asyncio.run(_readers(port, path, marker, subs, events, latency, conn)))
    except Exception as exc:  # reported to the parent, which raises it
        conn.send({"error": f"{type(exc).__name__}: {exc}"})


async def _readers(port, path, marker, subs, events, latency, conn) -> dict:
    streams = []
    for _ in range(subs):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        streams.append((reader, writer))
    for reader, _ in streams:
        await reader.readuntil(b"\r\n\r\n")
    conn.send("ready")

    async def consume(reader: asyncio.StreamReader) -> dict:
        count, nbytes, last_ns, lat, buf = 0, 0, 0, [], b""
        while count < events:
            data = await reader.read(1 << 18)
            if not data:
                break
            now = time.monotonic_ns()
            nbytes += len(data)
            lines = (buf + data).split(b"\n")
            buf = lines.pop()
            for line in lines:
                if line.startswith(marker):
                    count += 1
                    last_ns = now
                    if latency:
                        lat.append((now - int(SENT.search(line).group(1))) / 1e6)
        return {"count": count, "bytes": nbytes, "last_ns": last_ns, "latencies_ms": lat}

    results = await asyncio.wait_for(asyncio.gather(*(consume(r) for r, _ in streams)), timeout=300)
    for _, writer in streams:
        writer.close()
    return {
        "counts": [r["count"] for r in results],
        "bytes": [r["bytes"] for r in results],
        "last_ns": max(r["last_ns"] for r in results),
        "latencies_ms": [x for r in results for x in r["latencies_ms"]],
    }


def run_readers(server: ServerThread, kind: str, subs: int, events: int, publish, latency=False):
    """Start ``subs`` readers in a child process, call ``publish()`` once they
    are all connected, and return what they measured plus ``first_sent_ns``."""
    path = PATHS[kind].format(after=server.hub.log.last_seq)
    parent, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(
        target=_reader_main,
        args=(server.port, path, MARKERS[kind], subs, events, latency, child),
        daemon=True,
    )
    proc.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("readers did not connect within 120 s")
        first = parent.recv()
        if first != "ready":
            raise RuntimeError(f"reader process failed: {first}")
        wait_until(lambda: server.call(lambda: server.hub.subscriber_count) >= subs, timeout=30)
        first_sent_ns = publish()
        if not parent.poll(300):
            raise RuntimeError("readers did not finish within 300 s")
        result = parent.recv()
        if "error" in result:
            raise RuntimeError(result["error"])
        result["first_sent_ns"] = first_sent_ns
        return result
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def burst(server: ServerThread, n: int):
    def publish() -> int:
        first = server.publish("price.tick", PAYLOAD).sent_ns
        for _ in range(n - 1):
            server.publish("price.tick", PAYLOAD)
        return first

    return publish


def burst_on_loop(server: ServerThread, n: int):
    """The same burst, published on the server's own loop thread: no GIL
    hand-over between a publishing thread and the loop on every event."""

    def publish() -> int:
        def all_at_once() -> int:
            first = server.hub.publish("price.tick", PAYLOAD).sent_ns
            for _ in range(n - 1):
                server.hub.publish("price.tick", PAYLOAD)
            return first

        return server.call(all_at_once, timeout=120)

    return publish


def paced(server: ServerThread, n: int, gap_s: float):
    def publish() -> int:
        first = server.publish("price.tick", PAYLOAD).sent_ns
        next_at = time.perf_counter()
        for _ in range(n - 1):
            next_at += gap_s
            while time.perf_counter() < next_at:  # sleep() is too coarse for 1 ms
                if next_at - time.perf_counter() > 0.0003:
                    time.sleep(0.0002)
            server.publish("price.tick", PAYLOAD)
        return first

    return publish


# -- the measurements ----------------------------------------------------------------


def throughput(server: ServerThread, kind: str, subs: int, events: int, on_loop=False) -> dict:
    publisher = burst_on_loop if on_loop else burst
    r = run_readers(server, kind, subs, events, publisher(server, events))
    elapsed = (r["last_ns"] - r["first_sent_ns"]) / 1e9
    complete = all(c == events for c in r["counts"])
    return {
        "transport": kind,
        "subscribers": subs,
        "publisher": "server loop" if on_loop else "another thread",
        "events": events,
        "complete": complete,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed),
        "deliveries_per_s": round(subs * events / elapsed),
    }


def latency(server: ServerThread, kind: str, events: int, gap_s: float) -> dict:
    r = run_readers(server, kind, 1, events, paced(server, events, gap_s), latency=True)
    lat = r["latencies_ms"]
    return {
        "transport": kind,
        "reader": "raw socket, separate process",
        "events": len(lat),
        "p50_ms": round(pct(lat, 50), 3),
        "p99_ms": round(pct(lat, 99), 3),
        "max_ms": round(max(lat), 3),
        "bytes_per_event": round(r["bytes"][0] / events, 1),
    }


def lab_client_latency(server: ServerThread, kind: str, events: int, gap_s: float) -> dict:
    start = server.hub.log.last_seq + 1
    rec = ArrivalRecorder(kind, first_seq=start)
    if kind == "chunked":
        client = NDJSONStreamClient(server.url, recorder=rec)
        client.last_seq = start - 1
        client.start()
        wait_until(lambda: client.connections == 1, timeout=10)
    else:
        client = ReconnectingSSEClient(server.url, last_event_id=start - 1, recorder=rec).start()
        client.wait_connected(timeout=10)
    try:
        paced(server, events, gap_s)()
        rec.wait_for(start + events - 1, timeout=30)
    finally:
        client.stop()
    lat = rec.latencies_ms()
    return {
        "transport": kind,
        "reader": f"{type(client).__name__} (thread in the server's process)",
        "events": len(lat),
        "p50_ms": round(pct(lat, 50), 3),
        "p99_ms": round(pct(lat, 99), 3),
        "max_ms": round(max(lat), 3),
    }


def buffering(server: ServerThread, n: int = 5, gap_s: float = 0.2) -> dict:
    out: dict = {}
    proxy = runtime.start(
        "bench-buffering-proxy", streaming_buffering.buffering_proxy_app(server.url)
    )
    try:
        tiny = lesson.proxy_runs(
            server, lambda p: f"{proxy.url}/{p}", n=n, gap_s=gap_s, label="tiny proxy"
        )
        out["tiny_proxy"] = [r.row() for r in tiny]
    finally:
        proxy.stop()
    if JupyterServerProxy.available():
        import jupyter_server_proxy

        with JupyterServerProxy() as jsp:
            real = lesson.proxy_runs(
                server,
                lambda p: jsp.url_for(server.port, p),
                headers=jsp.headers,
                n=n,
                gap_s=gap_s,
                label=f"jupyter-server-proxy {jupyter_server_proxy.__version__}",
            )
        out["jupyter_server_proxy"] = [r.row() for r in real]
    else:
        out["jupyter_server_proxy"] = None
    return out


def machine() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    info = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tornado": tornado.version,
        "load_avg_at_start": [round(x, 2) for x in load],
    }
    info["summary"] = (
        f"{platform.system()} {platform.machine()}, {info['cpus']} cores, "
        f"Python {info['python']}, Tornado {info['tornado']}, "
        f"load average {info['load_avg_at_start'][0]} at start"
    )
    return info


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.streaming", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (a smoke test)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    one_sub_events = 5_000 if args.quick else 50_000
    if args.quick:
        fan = [(1, 2_000), (10, 2_000), (100, 500)]
    else:
        fan = [(1, 10_000), (10, 5_000), (100, 2_000), (1000, 500)]
    paced_events = 300 if args.quick else 2_000
    command = "python -m benchmarks.streaming" + (" --quick" if args.quick else "")
    result: dict = {"command": command, "machine": machine(), "payload": PAYLOAD}
    print(f"{command}\n{result['machine']['summary']}", flush=True)

    feed = sse.SSEFeed()
    app = app_with(streaming.routes, feed.routes, state=feed)
    with ServerThread(app, name="bench-streaming") as server:
        server.hub.queue_size = 200_000  # NDJSON subscribers
        feed.queue_size = 200_000
        feed.heartbeat_s = 0
        for kind in ("chunked", "sse"):  # warm-up, excluded
            throughput(server, kind, 1, 200)

        result["throughput_1_subscriber"] = [
            throughput(server, kind, 1, one_sub_events, on_loop)
            for on_loop in (False, True)
            for kind in ("chunked", "sse")
        ]
        result["fan_out"] = [
            throughput(server, kind, subs, n) for kind in ("chunked", "sse") for subs, n in fan
        ]
        result["latency"] = [
            latency(server, kind, paced_events, 0.001) for kind in ("chunked", "sse")
        ]
        result["latency_lab_clients"] = [
            lab_client_latency(server, kind, paced_events // 2, 0.002)
            for kind in ("chunked", "sse")
        ]
        one_event = len(
            next(e for e in server.hub.log.since(server.hub.log.last_seq - 1)[0]).to_json()
        )
        result["event_json_bytes"] = one_event
        result["buffering"] = buffering(server)

    thr = {(r["transport"], r["publisher"]): r for r in result["throughput_1_subscriber"]}
    lat = {r["transport"]: r for r in result["latency"]}
    fan_out = {(r["transport"], r["subscribers"]): r for r in result["fan_out"]}
    result["summary_rows"] = [
        *[
            {
                "measure": f"events/s to 1 subscriber, published from {who} (target >= 10,000)",
                "chunked NDJSON": thr[("chunked", who)]["events_per_s"],
                "SSE": thr[("sse", who)]["events_per_s"],
            }
            for who in ("another thread", "server loop")
        ],
        *[
            {
                "measure": f"deliveries/s, fan-out to {subs} subscribers",
                "chunked NDJSON": fan_out[("chunked", subs)]["deliveries_per_s"],
                "SSE": fan_out[("sse", subs)]["deliveries_per_s"],
            }
            for subs, _ in fan
        ],
        {
            "measure": "latency p50 ms, raw reader (target < 0.5)",
            "chunked NDJSON": lat["chunked"]["p50_ms"],
            "SSE": lat["sse"]["p50_ms"],
        },
        {
            "measure": "latency p99 ms, raw reader",
            "chunked NDJSON": lat["chunked"]["p99_ms"],
            "SSE": lat["sse"]["p99_ms"],
        },
        *[
            {
                "measure": f"latency p{p} ms, lab clients (requests / sseclient-py)",
                "chunked NDJSON": result["latency_lab_clients"][0][f"p{p}_ms"],
                "SSE": result["latency_lab_clients"][1][f"p{p}_ms"],
            }
            for p in (50, 99)
        ],
        {
            "measure": f"bytes on the wire per event ({one_event} B of JSON)",
            "chunked NDJSON": lat["chunked"]["bytes_per_event"],
            "SSE": lat["sse"]["bytes_per_event"],
        },
    ]
    result["targets_met"] = {
        "events_per_s_1_subscriber_ge_10000": {
            f"{kind}, published from {who}": r["events_per_s"] >= 10_000
            for (kind, who), r in thr.items()
        },
        "p50_latency_lt_0.5_ms": {r["transport"]: r["p50_ms"] < 0.5 for r in result["latency"]},
    }
    result["all_complete"] = all(
        r["complete"] for r in result["throughput_1_subscriber"] + result["fan_out"]
    )

    width = max(len(r["measure"]) for r in result["summary_rows"])
    print(f"\n{'measure':<{width}}  {'chunked NDJSON':>15}  {'SSE':>10}")
    for row in result["summary_rows"]:
        print(f"{row['measure']:<{width}}  {row['chunked NDJSON']:>15}  {row['SSE']:>10}")
    print("\nbuffering (first arrival vs last send, ms):")
    for rows in result["buffering"].values():
        for row in rows or []:
            print(
                f"  {row['variant']:<54} first {row['first arrival (ms)']:>7}"
                f"  last send {row['last send (ms)']:>7}  buffered={row['buffered']}"
            )
    print(f"\ntargets met: {result['targets_met']}")
    print(f"every delivery complete: {result['all_complete']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
