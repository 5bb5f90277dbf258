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
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from tornado.web import Application, RequestHandler

from lab.provider_handle import ProviderHandle
from lab.recorder import ArrivalRecorder
from servers.runtime import ServerThread
from servers.webhooks import outbox, signing
from servers.webhooks.provider import provider_app
from servers.webhooks.receiver import Receiver, WebhookHandler, quiet_log

RESULTS = Path(__file__).resolve().parent / "results" / "webhooks.json"
LIMITS = (
    "Python CPU per delivery (cpu_us_per_delivery_by_thread): the receiver's share is mostly "
    "Tornado's own HTTP server path (compare the bare-Tornado rows), the provider's is SQLite "
    "writes, the asyncio HTTP client and HMAC. In-process, both sides share one GIL; the machine "
    "has 2 cores shared with other jobs (load_average_1min). With 10 subscribers one event is 10 "
    "deliveries issued at once, so its latency includes waiting behind the other 9."
)
WARMUP = 50
PAYLOAD = {"to": "someone@example.com", "reason": "mailbox full", "message_id": "m-000001"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def wait(pred, timeout: float, poll_s: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(poll_s)
    return pred()


class InProcessReceivers:
    """Receivers in this process (as in the notebook): one interpreter, one GIL
    shared by the provider's loop thread and the receivers' loop thread."""

    label = "in-process"
    poll_s = 0.001

    def __init__(self, subscribers: int, secret: str) -> None:
        self.receivers = [
            Receiver(secret, recorder=ArrivalRecorder(f"r{i}")) for i in range(subscribers)
        ]
        app = Application(
            [(f"/hook/{i}", WebhookHandler, {"receiver": r}) for i, r in enumerate(self.receivers)],
            log_function=quiet_log,
        )

        def factory(hub):
            # Each receiver acknowledges after storing; its worker does the
            # work after the 2xx, on this server's loop (as app_factory does).
            for receiver in self.receivers:
                receiver.start_worker()
            return app

        self.server = ServerThread(factory, name="bench-receivers").start()
        self.url = self.server.url

    def processed(self) -> int:
        return sum(r.processed_once for r in self.receivers)

    def reset_latencies(self) -> None:
        for r in self.receivers:
            r.recorder.reset()

    def latencies(self) -> list[float]:
        return [lat for r in self.receivers for lat in r.recorder.latencies_ms()]

    def processed_twice(self) -> int:
        return sum(r.processed_twice for r in self.receivers)

    def stop(self) -> None:
        self.server.stop()


class BareTornadoReceivers(InProcessReceivers):
    """Baseline: a bare Tornado POST handler (no signature check, no dedupe,
    no receipt log) in place of the receiver, to show what Tornado's own HTTP
    server path costs per request."""

    label = "bare tornado"

    def __init__(self, subscribers: int, secret: str) -> None:
        self.counts = [0] * subscribers
        self.lat: list[float] = []
        counts, lat = self.counts, self.lat

        class Bare(RequestHandler):
            def check_xsrf_cookie(self) -> None:
                return

            def post(self, i: str) -> None:
                doc = json.loads(self.request.body)
                if "sent_ns" in doc:  # not the size probe
                    counts[int(i)] += 1
                    lat.append((time.monotonic_ns() - doc["sent_ns"]) / 1e6)

        app = Application([(r"/hook/(\d+)", Bare)], log_function=quiet_log)
        self.server = ServerThread(lambda hub: app, name="bench-receivers").start()
        self.url = self.server.url

    def processed(self) -> int:
        return sum(self.counts)

    def reset_latencies(self) -> None:
        self.lat.clear()

    def latencies(self) -> list[float]:
        return list(self.lat)

    def processed_twice(self) -> int:
        return 0


class SubprocessReceivers:
    """The same receivers in a child process, as in a real deployment where
    provider and receiver do not share an interpreter. Latency stays exact:
    on Linux ``CLOCK_MONOTONIC`` (``time.monotonic_ns``) is one clock for
    every process of the machine."""

    label = "separate process"
    poll_s = 0.02

    def __init__(self, subscribers: int, secret: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.webhooks", "--serve-receivers", str(subscribers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "WEBHOOK_SECRET": secret},
        )
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "PORT":
            self.proc.kill()
            raise RuntimeError("the receiver process did not start")
        self.url = f"http://127.0.0.1:{line[1]}"
        self.session = requests.Session()

    def _stats(self, latencies: bool = False) -> dict:
        params = {"latencies": "1"} if latencies else {}
        return self.session.get(f"{self.url}/stats", params=params, timeout=10).json()

    def processed(self) -> int:
        return self._stats()["processed"]

    def reset_latencies(self) -> None:
        self.session.post(f"{self.url}/reset", timeout=10)

    def latencies(self) -> list[float]:
        return self._stats(latencies=True)["latencies_ms"]

    def processed_twice(self) -> int:
        return self._stats()["processed_twice"]

    def stop(self) -> None:
        self.session.close()
        try:
            self.proc.communicate("quit\n", timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def serve_receivers(subscribers: int) -> None:
    """Child-process side of ``SubprocessReceivers``."""
    inner = InProcessReceivers(subscribers, os.environ["WEBHOOK_SECRET"])
    outer = inner

    class Stats(RequestHandler):
        def get(self) -> None:
            doc = {"processed": outer.processed(), "processed_twice": outer.processed_twice()}
            if self.get_query_argument("latencies", None):
                doc["latencies_ms"] = outer.latencies()
            self.finish(doc)

    class Reset(RequestHandler):
        def check_xsrf_cookie(self) -> None:
            return

        def post(self) -> None:
            outer.reset_latencies()
            self.finish({})

    inner.server.call(
        lambda: inner.server.app.wildcard_router.add_rules([("/stats", Stats), ("/reset", Reset)])
    )
    print(f"PORT {inner.server.port}", flush=True)
    sys.stdin.readline()  # until the parent says quit (or goes away)
    inner.stop()


def run(subscribers: int, burst: int, paced: int, rate: float, workdir: str, mode: type) -> dict:
    secret = signing.generate_secret()
    receivers = mode(subscribers, secret)
    path = Path(workdir) / f"bench-{subscribers}.sqlite3"
    outbox.reset(path)
    try:
        with ServerThread(
            provider_app(path, allow_loopback=True, timeout_s=5.0, max_in_flight=64),
            name="bench-provider",
        ) as pserver:
            handle = ProviderHandle(pserver)
            for i in range(subscribers):
                handle.subscribe(f"{receivers.url}/hook/{i}", ["email.bounced"], secret)

            # warm-up: connections opened, code paths hot
            for _ in range(WARMUP):
                pserver.publish("email.bounced", PAYLOAD)
            if not wait(
                lambda: receivers.processed() == WARMUP * subscribers, 30, receivers.poll_s
            ):
                raise RuntimeError("warm-up did not finish")

            # throughput: a burst
            base = receivers.processed()
            cpu0 = _thread_cpu()
            t0 = time.perf_counter()
            for _ in range(burst):
                pserver.publish("email.bounced", PAYLOAD)
            done = wait(
                lambda: receivers.processed() - base == burst * subscribers, 120, receivers.poll_s
            )
            elapsed = time.perf_counter() - t0
            if not done:
                raise RuntimeError("burst not delivered within 120 s")
            throughput = burst * subscribers / elapsed
            cpu1 = _thread_cpu()
            cpu_us = {
                name: round((cpu1[name] - cpu0[name]) / (burst * subscribers) * 1e6)
                for name in cpu1
                if name in cpu0
            }
            load = _load()

            # latency: paced events, ``rate`` deliveries per second
            receivers.reset_latencies()
            interval = subscribers / rate
            next_at = time.perf_counter()
            for _ in range(paced):
                pserver.publish("email.bounced", PAYLOAD)
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))
            total = (WARMUP + burst + paced) * subscribers
            if not wait(lambda: receivers.processed() == total, 60, receivers.poll_s):
                raise RuntimeError("paced run unfinished")
            latencies = receivers.latencies()
            raw = handle.request_bytes()
            status = handle.status()
            twice = receivers.processed_twice()
            response_bytes = _response_bytes(handle)
    finally:
        receivers.stop()
        outbox.reset(path)
    head, _, body = raw.partition(b"\r\n\r\n")
    return {
        "receivers": receivers.label,
        "subscribers": subscribers,
        "deliveries_burst": burst * subscribers,
        "deliveries_per_s": round(throughput, 1),
        "latency_events": len(latencies),
        "latency_rate_deliveries_per_s": rate,
        "latency_p50_ms": round(percentile(latencies, 50), 3),
        "latency_p99_ms": round(percentile(latencies, 99), 3),
        "latency_max_ms": round(max(latencies), 3),
        "request_bytes_per_delivery": len(raw),
        "request_head_bytes": len(head) + 4,
        "request_body_bytes": len(body),
        "response_bytes_per_delivery": response_bytes,
        "connections_opened": status["connections_opened"],
        "processed_twice": twice,
        "cpu_us_per_delivery_by_thread": cpu_us,
        "load_average_1min": load,
    }


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows
        return None


def _thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by this process's server threads (POSIX only):
    shows which side of a delivery costs what."""
    out = {}
    for t in threading.enumerate():
        if t.name in ("server-bench-provider", "server-bench-receivers") and t.ident:
            try:
                clock = time.pthread_getcpuclockid(t.ident)
                out[t.name.removeprefix("server-bench-")] = time.clock_gettime(clock)
            except (AttributeError, OSError):
                pass
    return out


def _response_bytes(handle: ProviderHandle) -> int:
    """Size of one receiver answer (status line + headers + body), measured
    by sending one more request the way the provider delivers (``post_signed``)."""

    async def probe(p):
        endpoint = p.endpoints.all()[0]
        resp = await p.post_signed(endpoint, "msg_probe", b'{"type":"probe","data":{}}')
        return len(resp.response_head) + len(resp.body)

    return handle.server.call(lambda: probe(handle.provider), timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, a few seconds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--serve-receivers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receivers:
        return serve_receivers(args.serve_receivers)
    # latency is measured at ``rate`` deliveries/s, well below saturation
    burst, paced, rate = (300, 100, 200.0) if args.quick else (3000, 1000, 200.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in (InProcessReceivers, SubprocessReceivers, BareTornadoReceivers):
            for subs in (1, 10):
                rows.append(run(subs, burst if subs == 1 else burst // 5, paced, rate, tmp, mode))
    print(
        f"{'receivers':<17} {'subs':>4} {'deliveries/s':>12} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'req B':>6} {'resp B':>6} {'conns':>5} {'twice':>5} {'load':>5}  CPU per delivery"
    )
    for r in rows:
        print(
            f"{r['receivers']:<17} {r['subscribers']:>4} {r['deliveries_per_s']:>12.0f} "
            f"{r['latency_p50_ms']:>7.2f} {r['latency_p99_ms']:>7.2f} "
            f"{r['request_bytes_per_delivery']:>6} {r['response_bytes_per_delivery']:>6} "
            f"{r['connections_opened']:>5} {r['processed_twice']:>5} {r['load_average_1min']!s:>5}"
            + "".join(f"  {k} {v} us" for k, v in r["cpu_us_per_delivery_by_thread"].items())
        )
    doc = {
        "benchmark": "webhooks",
        "command": "python -m benchmarks.webhooks" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "note": "2-core machine shared with other jobs (see load_average_1min per row)",
        },
        "clock": "time.monotonic_ns (CLOCK_MONOTONIC: one clock for all processes on Linux)",
        "warmup_events_excluded": WARMUP,
        "payload": PAYLOAD,
        "method": {
            "deliveries_per_s": "burst published at once; deliveries processed / time from the "
            "first publish to the last processing",
            "latency": "publish() to the receiver's handler processing the verified event, "
            f"events paced at {rate:g} deliveries/s",
            "bytes": "request line + headers + body as written to the socket; response: status "
            "line + headers + body",
        },
        "targets": {"deliveries_per_s": 1000, "latency_p50_ms": 2.0},
        "limits": LIMITS,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
