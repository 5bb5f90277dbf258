"""Webhooks benchmark: signed deliveries per second, trigger-to-handler latency,
bytes on the wire per event.

    python -m benchmarks.webhooks          # full run (about a minute)
    python -m benchmarks.webhooks --quick  # a few seconds

A provider (SQLite outbox, keep-alive connections, HMAC-SHA256 signatures)
and the receivers run in this process, each on its own Tornado loop in a
thread, exactly as in the notebook. Latency is trigger-to-handler: from
``publish()`` stamping ``sent_ns`` to the receiver's handler processing the
verified event (same monotonic clock, so exact). Throughput: a burst of
events published at once; deliveries per second = deliveries processed /
time from the first publish to the last processing. Latency: events
published one at a time at a modest rate, so queueing does not dominate.
The first ``WARMUP`` events of each run are excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from tornado.web import Application

from lab.recorder import ArrivalRecorder
from servers.runtime import ServerThread
from servers.webhooks import outbox, signing
from servers.webhooks.provider import ProviderHandle, provider_app
from servers.webhooks.receiver import Receiver, WebhookHandler

RESULTS = Path(__file__).resolve().parent / "results" / "webhooks.json"
WARMUP = 50
PAYLOAD = {"to": "someone@example.com", "reason": "mailbox full", "message_id": "m-000001"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.001)
    return pred()


def run(subscribers: int, burst: int, paced: int, rate: float, workdir: str) -> dict:
    secret = signing.generate_secret()
    receivers = [Receiver(secret, recorder=ArrivalRecorder(f"r{i}")) for i in range(subscribers)]
    app = Application(
        [(f"/hook/{i}", WebhookHandler, {"receiver": r}) for i, r in enumerate(receivers)]
    )
    path = Path(workdir) / f"bench-{subscribers}.sqlite3"
    outbox.reset(path)
    with (
        ServerThread(lambda hub: app, name="bench-receivers") as rserver,
        ServerThread(
            provider_app(path, allow_loopback=True, timeout_s=5.0, max_in_flight=64),
            name="bench-provider",
        ) as pserver,
    ):
        handle = ProviderHandle(pserver)
        for i in range(subscribers):
            handle.subscribe(f"{rserver.url}/hook/{i}", ["email.bounced"], secret)

        def processed() -> int:
            return sum(r.processed_once for r in receivers)

        # warm-up: connections opened, code paths hot
        for _ in range(WARMUP):
            pserver.publish("email.bounced", PAYLOAD)
        assert wait(lambda: processed() == WARMUP * subscribers, 30), "warm-up did not finish"

        # throughput: a burst
        base = processed()
        t0 = time.perf_counter()
        for _ in range(burst):
            pserver.publish("email.bounced", PAYLOAD)
        done = wait(lambda: processed() - base == burst * subscribers, 120)
        elapsed = time.perf_counter() - t0
        if not done:
            raise RuntimeError("burst not delivered within 120 s")
        throughput = burst * subscribers / elapsed

        # latency: paced events
        for r in receivers:
            r.recorder.reset()
        interval = subscribers / rate  # ``rate`` is deliveries per second
        next_at = time.perf_counter()
        for _ in range(paced):
            pserver.publish("email.bounced", PAYLOAD)
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        base = WARMUP + burst
        assert wait(lambda: processed() == (base + paced) * subscribers, 60), "paced run unfinished"
        latencies = [lat for r in receivers for lat in r.recorder.latencies_ms()]

        raw = handle.request_bytes()
        status = handle.status()
        twice = sum(r.processed_twice for r in receivers)
        response_bytes = _response_bytes(handle)
    outbox.reset(path)
    return {
        "subscribers": subscribers,
        "deliveries_burst": burst * subscribers,
        "deliveries_per_s": round(throughput, 1),
        "latency_events": len(latencies),
        "latency_rate_deliveries_per_s": rate,
        "latency_p50_ms": round(percentile(latencies, 50), 3),
        "latency_p99_ms": round(percentile(latencies, 99), 3),
        "latency_max_ms": round(max(latencies), 3),
        "request_bytes_per_delivery": len(raw),
        "request_head_bytes": len(raw.partition(b"\r\n\r\n")[0]) + 4,
        "request_body_bytes": len(raw.partition(b"\r\n\r\n")[2]),
        "response_bytes_per_delivery": response_bytes,
        "connections_opened": status["connections_opened"],
        "processed_twice": twice,
    }


def _response_bytes(handle: ProviderHandle) -> int:
    """Size of one receiver answer (status line + headers + body), measured
    by sending one more request over the provider's own client."""
    import asyncio

    async def probe(p):
        sub = p.subscriptions()[0]
        from servers.webhooks.ssrf import check_url_async

        target = await check_url_async(sub.url, True)
        body = b'{"type":"probe","data":{}}'
        headers = signing.sign_headers(sub.secrets, "msg_probe", body)
        headers["Content-Type"] = "application/json"
        resp = await p.pool.post(
            target.scheme,
            target.host,
            target.addresses[0],
            target.port,
            target.target,
            headers,
            body,
            5.0,
        )
        return len(resp.response_head) + len(resp.body)

    return handle.server.call(lambda: asyncio.ensure_future(probe(handle.provider)), timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, a few seconds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    # latency is measured at ``rate`` deliveries/s, well below saturation
    burst, paced, rate = (300, 100, 200.0) if args.quick else (3000, 1000, 200.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for subs in (1, 10):
            rows.append(run(subs, burst if subs == 1 else burst // 5, paced, rate, tmp))
    header = (
        f"{'subs':>4} {'deliveries/s':>12} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'req B':>6} {'resp B':>6} {'conns':>5} {'twice':>5}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['subscribers']:>4} {r['deliveries_per_s']:>12.0f} {r['latency_p50_ms']:>7.2f} "
            f"{r['latency_p99_ms']:>7.2f} {r['request_bytes_per_delivery']:>6} "
            f"{r['response_bytes_per_delivery']:>6} {r['connections_opened']:>5} "
            f"{r['processed_twice']:>5}"
        )
    doc = {
        "benchmark": "webhooks",
        "command": "python -m benchmarks.webhooks" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "note": "2-core machine shared with other jobs; in-process servers",
        },
        "clock": "time.monotonic_ns (trigger and handler in one process)",
        "warmup_events_excluded": WARMUP,
        "payload": PAYLOAD,
        "targets": {"deliveries_per_s": 1000, "latency_p50_ms": 2.0},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
