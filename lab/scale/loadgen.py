"""Load generator: many WebSocket or SSE clients in separate processes.

Why processes: ten thousand clients in the kernel would share its one core
and its event loop with the server under test, and the notebook would freeze.
Each worker process (``multiprocessing`` with the *spawn* start method, so it
behaves the same on Linux, macOS and Windows) runs one asyncio loop holding
its share of the connections. The clients are deliberately small: raw asyncio
streams doing the WebSocket handshake and frame parsing (RFC 6455) or HTTP/1.1
chunked decoding and SSE parsing by hand, a few hundred bytes of state each.

What they measure: for every event, ``time.monotonic_ns()`` at arrival minus
the event's ``sent_ns``. Both are read from the same system-wide monotonic
clock (CLOCK_MONOTONIC on Linux, QueryPerformanceCounter on Windows), so the
latency is exact across processes on one machine.

Round-robin front: clients are assigned to servers round-robin *in the load
generator* (client ``i`` goes to ``urls[i % len(urls)]``): the simplest
load-balancing step, standing in for a proxy. When a connection drops (server
killed, or drained with close code 1001) the client moves to the next server
in the list and resumes with ``last_seq``, with exponential backoff and
jitter, a bounded number of times.

Always terminating: every worker has a lifetime after which it exits by
itself, exits when its parent process disappears, and ``close()`` escalates
from a polite command to ``terminate()`` and ``kill()``. ``stop_all()`` and an
``atexit`` hook close every generator of this process.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.stats import percentile

from . import process
from .loadgen_worker import worker_main

KINDS = ("ws", "sse")


@dataclass
class Delivery:
    """What the clients saw of one event (``seq``), summed over workers."""

    seq: int
    clients: int
    open: int
    latencies_ms: list[float]
    missing: int
    received: int
    dups: int
    gaps: int
    resyncs: int
    reconnects: int
    close_codes: dict = field(default_factory=dict)
    per_server: dict = field(default_factory=dict)
    got_seq_by_server: dict = field(default_factory=dict)
    latencies_ms_by_server: dict = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, p: float) -> float:
        """``benchmarks.stats.percentile`` of the latencies (NaN when none arrived)."""
        return percentile(self.latencies_ms, p) if self.latencies_ms else float("nan")

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)

    def summary(self) -> str:
        return (
            f"seq {self.seq}: delivered to {self.delivered}/{self.clients} clients, "
            f"missing {self.missing}, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"lost {self.gaps}, duplicated {self.dups}, reconnects {self.reconnects}"
        )


class LoadGenerator:
    """``processes`` worker processes holding WebSocket or SSE clients.

    ``urls`` are server base URLs (``http://127.0.0.1:PORT``); client ``i``
    connects to ``urls[i % len(urls)]``.
    """

    def __init__(
        self, urls: list[str] | str, kind: str = "ws", processes: int = 2, lifetime: float = 300.0
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.urls = [u.replace("ws://", "http://", 1).rstrip("/") for u in self.urls]
        self.kind = kind
        self.n_processes = max(1, int(processes))
        self.lifetime = lifetime
        self.total = 0
        self._ctx = mp.get_context("spawn")
        self._out = self._ctx.Queue()
        self._commands: list[Any] = []
        self.processes: list[Any] = []
        self._lock = threading.Lock()

    def start(self) -> LoadGenerator:
        for wid in range(self.n_processes):
            commands = self._ctx.Queue()
            conf = {"wid": wid, "kind": self.kind, "urls": self.urls, "lifetime": self.lifetime}
            proc = self._ctx.Process(
                target=worker_main, args=(conf, commands, self._out), daemon=True,
                name=f"loadgen-{self.kind}-{wid}",
            )  # fmt: skip
            proc.start()
            self._commands.append(commands)
            self.processes.append(proc)
        process.track(self)
        return self

    def __enter__(self) -> LoadGenerator:
        return self if self.processes else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def _collect(self, kind: str, timeout: float, on_progress: Any = None) -> dict[int, Any]:
        results: dict[int, Any] = {}
        end = time.monotonic() + timeout
        while len(results) < len(self.processes):
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"load generator: {len(results)}/{len(self.processes)} workers answered "
                    f"{kind!r} within {timeout} s"
                )
            try:
                msg = self._out.get(timeout=min(left, 0.5))
            except queue.Empty:
                dead = [p.name for p in self.processes if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"load generator workers died: {dead}") from None
                continue
            if msg[0] == "progress" and on_progress is not None:
                on_progress(msg[1], msg[2], msg[3])
            elif msg[0] == kind:
                results[msg[1]] = msg[2:]
        return results

    def connect(self, n: int, progress: bool = True, timeout: float = 120.0) -> int:
        """Open ``n`` more connections, spread over the workers; returns how
        many are open in total. A tqdm bar shows progress when asked."""
        if not self.processes:
            self.start()
        n = int(n)
        shares = [n // self.n_processes + (1 if w < n % self.n_processes else 0)
                  for w in range(self.n_processes)]  # fmt: skip
        first = self.total
        for wid, share in enumerate(shares):
            self._commands[wid].put(("connect", first, share))
            first += share
        self.total += n
        bar = None
        done = dict.fromkeys(range(self.n_processes), 0)
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"connecting {n} {self.kind} clients", unit="conn")

        def on_progress(wid: int, count: int, failed: int) -> None:
            done[wid] = count
            if bar is not None:
                bar.n = sum(done.values())
                bar.refresh()

        try:
            results = self._collect("connected", timeout, on_progress)
        finally:
            if bar is not None:
                bar.close()
        self.failed = sum(r[1] for r in results.values())
        return sum(r[0] for r in results.values())

    def set_urls(self, urls: list[str]) -> None:
        """Replace the server list (a new replica joined, one left): clients
        that reconnect from now on pick from it, still round-robin."""
        self.urls = [u.replace("ws://", "http://", 1).rstrip("/") for u in urls]
        for commands in self._commands:
            commands.put(("urls", self.urls))

    def report(self, seq: int, timeout: float = 30.0) -> Delivery:
        """Wait (bounded) until every client has ``seq``, then sum up."""
        for commands in self._commands:
            commands.put(("report", seq, timeout))
        parts = [r[0] for r in self._collect("report", timeout + 15).values()]

        def merged(key: str) -> dict:
            out: dict = {}
            for part in parts:
                for k, v in part[key].items():
                    out[k] = out.get(k, 0) + v
            return out

        return Delivery(
            seq=seq,
            clients=sum(p["clients"] for p in parts),
            open=sum(p["open"] for p in parts),
            latencies_ms=[ns / 1e6 for p in parts for ns in p["latency_ns"]],
            missing=sum(len(p["missing"]) for p in parts),
            received=sum(p["received"] for p in parts),
            dups=sum(p["dups"] for p in parts),
            gaps=sum(p["gaps"] for p in parts),
            resyncs=sum(p["resyncs"] for p in parts),
            reconnects=sum(p["reconnects"] for p in parts),
            close_codes=merged("close_codes"),
            per_server={self.urls[k]: v for k, v in merged("per_server").items()},
            got_seq_by_server={self.urls[k]: v for k, v in merged("got_seq_by_server").items()},
            latencies_ms_by_server={
                self.urls[k]: [
                    ns / 1e6 for p in parts for ns in p["latency_ns_by_server"].get(k, [])
                ]
                for k in {k for p in parts for k in p["latency_ns_by_server"]}
            },
        )

    def close(self, timeout: float = 5.0) -> None:
        """Close every connection and end every worker; never leaves one behind."""
        with self._lock:
            for commands, proc in zip(self._commands, self.processes, strict=False):
                if proc.is_alive():
                    try:
                        commands.put(("close",))
                    except (OSError, ValueError):
                        pass
            end = time.monotonic() + timeout
            for proc in self.processes:
                proc.join(max(0.0, end - time.monotonic()))
            for proc in self.processes:
                process.end_process(proc, 1.0)
            for q in [*self._commands, self._out]:
                q.close()
                q.join_thread()
            self._commands = []
            self.processes = []
            process.untrack(self)

    def stop(self, timeout: float = 5.0) -> None:
        """The same as ``close()``: the name ``lab.scale.process.stop_all`` calls."""
        self.close(timeout)

    @property
    def alive(self) -> int:
        return sum(p.is_alive() for p in self.processes)


def stop_all() -> None:
    """Close every load generator of this process (the clean-up cell)."""
    process.stop_all(LoadGenerator)


atexit.register(stop_all)
