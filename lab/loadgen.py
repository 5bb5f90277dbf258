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

import asyncio
import atexit
import base64
import json
import multiprocessing as mp
import os
import queue
import random
import struct
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

KINDS = ("ws", "sse")
CONNECT_CONCURRENCY = 64  # in-flight handshakes per worker: stays under the listen backlog
MAX_RECONNECTS = 20


# =============================================================================
# Worker side (runs in the child process)
# =============================================================================
class _Client:
    """One connection's state: a few integers and a small dict."""

    __slots__ = (
        "index", "server", "last_seq", "received", "dups", "gaps", "resyncs",
        "reconnects", "arrivals", "close_codes", "open", "task", "writer", "chunked",
    )  # fmt: skip

    def __init__(self, index: int, server: int) -> None:
        self.index = index
        self.server = server
        # Counters, like lab/sse_client.py's: another client, other counts.
        self.last_seq = 0
        self.received = 0
        self.dups = 0
        self.gaps = 0
        self.resyncs = 0
        self.reconnects = 0
        self.arrivals: dict[int, int] = {}  # seq -> latency ns (last 64 kept)
        self.close_codes: list[int] = []
        self.open = False
        self.task: asyncio.Task | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.chunked = True

    def on_event(self, seq: int, sent_ns: int, now: int) -> None:
        if seq <= self.last_seq:
            self.dups += 1
            return
        if self.last_seq and seq > self.last_seq + 1:
            self.gaps += seq - self.last_seq - 1
        self.last_seq = seq
        self.received += 1
        self.arrivals[seq] = now - sent_ns
        if len(self.arrivals) > 64:
            del self.arrivals[next(iter(self.arrivals))]


class _Worker:
    def __init__(self, conf: dict, commands: Any, out: Any) -> None:
        self.wid = conf["wid"]
        self.kind = conf["kind"]
        self.urls = [urlsplit(u) for u in conf["urls"]]
        self.deadline = time.monotonic() + conf["lifetime"]
        self.commands = commands
        self.out = out
        self.clients: list[_Client] = []
        self.closing = False
        self.connect_sem: asyncio.Semaphore | None = None

    async def run(self) -> None:
        self.connect_sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
        loop = asyncio.get_running_loop()
        parent = mp.parent_process()
        while time.monotonic() < self.deadline:
            try:
                cmd = await loop.run_in_executor(None, self.commands.get, True, 0.25)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    break  # the kernel went away: do not linger
                continue
            if cmd[0] == "connect":
                await self.connect(cmd[1], cmd[2])
            elif cmd[0] == "report":
                await self.report(cmd[1], cmd[2])
            elif cmd[0] == "urls":
                self.urls = [urlsplit(u) for u in cmd[1]]
            elif cmd[0] == "close":
                break
        await self.shutdown()
        self.out.put(("closed", self.wid))

    async def connect(self, first_index: int, count: int) -> None:
        new = [_Client(i, i % len(self.urls)) for i in range(first_index, first_index + count)]
        self.clients.extend(new)
        done = 0
        failed = 0
        ready: list[asyncio.Future] = []
        for client in new:
            fut = asyncio.get_running_loop().create_future()
            ready.append(fut)
            client.task = asyncio.create_task(self.client_loop(client, fut))
        step = max(1, count // 50)
        for fut in asyncio.as_completed(ready):
            ok = await fut
            done += 1
            failed += 0 if ok else 1
            if done % step == 0 or done == count:
                self.out.put(("progress", self.wid, done, failed))
        self.out.put(("connected", self.wid, sum(c.open for c in self.clients), failed))

    async def client_loop(self, client: _Client, ready: asyncio.Future) -> None:
        attempts = 0
        first = True
        while not self.closing and time.monotonic() < self.deadline:
            client.server %= len(self.urls)
            url = self.urls[client.server]
            try:
                async with self.connect_sem:
                    reader, writer = await asyncio.wait_for(self.handshake(url, client), 10)
                client.open = True
                client.writer = writer
                attempts = 0
                if not ready.done():
                    ready.set_result(True)
                first = False
                await (
                    self.read_ws(reader, client)
                    if self.kind == "ws"
                    else self.read_sse(reader, client)
                )
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                pass
            finally:
                client.open = False
                if client.writer is not None:
                    client.writer.close()
                    client.writer = None
            if self.closing:
                break
            attempts += 1
            if attempts > MAX_RECONNECTS or (first and attempts > 3):
                break
            client.reconnects += 1
            # Move on: the next server in the list (a crashed or draining one
            # is skipped), after exponential backoff with full jitter.
            client.server = (client.server + 1) % len(self.urls)
            await asyncio.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempts)))
        if not ready.done():
            ready.set_result(False)

    async def handshake(self, url: Any, client: _Client) -> tuple:
        reader, writer = await asyncio.open_connection(url.hostname, url.port, limit=2**20)
        query = f"?after={client.last_seq}" if client.last_seq else ""
        host = f"{url.hostname}:{url.port}"
        if self.kind == "ws":
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET /ws{query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            )
        else:
            request = (
                f"GET /sse{query} HTTP/1.1\r\nHost: {host}\r\n"
                "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
            )
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        want = b"101" if self.kind == "ws" else b"200"
        if status != want:
            writer.close()
            raise ValueError(f"server answered {status!r}")
        client.chunked = b"transfer-encoding: chunked" in head.lower()
        return reader, writer

    async def read_ws(self, reader: asyncio.StreamReader, client: _Client) -> None:
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await reader.readexactly(8))
            if b1 & 0x80:  # servers must not mask; tolerate it anyway
                await reader.readexactly(4)
            data = await reader.readexactly(n)
            now = time.monotonic_ns()
            opcode = b0 & 0x0F
            if opcode == 0x8:
                client.close_codes.append(
                    struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                )
                return
            if opcode == 0x9 and client.writer is not None:  # ping -> masked pong
                mask = os.urandom(4)
                body = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
                client.writer.write(bytes([0x8A, 0x80 | len(data)]) + mask + body)
            elif opcode == 0x1:
                self.on_message(client, json.loads(data), now)

    async def read_sse(self, reader: asyncio.StreamReader, client: _Client) -> None:
        buffer = b""
        while True:
            if client.chunked:
                line = await reader.readline()
                if not line:
                    return
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    return  # the server ended the stream (drain)
                chunk = (await reader.readexactly(size + 2))[:-2]
            else:
                chunk = await reader.read(65536)
                if not chunk:
                    return
            now = time.monotonic_ns()
            buffer += chunk.replace(b"\r\n", b"\n")
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                data: list[bytes] = []  # a notice names its kind in its JSON "type"
                for line in block.split(b"\n"):
                    if line.startswith(b"data:"):
                        data.append(line[5:].lstrip(b" "))
                if data:
                    message = json.loads(b"\n".join(data))
                    self.on_message(client, message, now)

    @staticmethod
    def on_message(client: _Client, message: dict, now: int) -> None:
        if message.get("type") == "resync":  # servers.cursor.resync_notice
            if message.get("missed"):  # gone for good: go on after them
                client.resyncs += 1
                client.last_seq = max(client.last_seq, int(message["missed"][1]))
        elif "seq" in message:
            client.on_event(int(message["seq"]), int(message.get("sent_ns", now)), now)

    async def report(self, seq: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(c.last_seq < seq for c in self.clients):
            await asyncio.sleep(0.01)
        per_server: dict[int, int] = {}
        for c in self.clients:
            if c.open:
                per_server[c.server] = per_server.get(c.server, 0) + 1
        self.out.put(
            (
                "report",
                self.wid,
                {
                    "clients": len(self.clients),
                    "open": sum(c.open for c in self.clients),
                    "latency_ns": [c.arrivals[seq] for c in self.clients if seq in c.arrivals],
                    "missing": [c.index for c in self.clients if c.last_seq < seq],
                    "got_seq_by_server": _count(
                        c.server for c in self.clients if seq in c.arrivals
                    ),
                    "latency_ns_by_server": _group(
                        (c.server, c.arrivals[seq]) for c in self.clients if seq in c.arrivals
                    ),
                    "received": sum(c.received for c in self.clients),
                    "dups": sum(c.dups for c in self.clients),
                    "gaps": sum(c.gaps for c in self.clients),
                    "resyncs": sum(c.resyncs for c in self.clients),
                    "reconnects": sum(c.reconnects for c in self.clients),
                    "close_codes": _count(code for c in self.clients for code in c.close_codes),
                    "per_server": per_server,
                },
            )
        )

    async def shutdown(self) -> None:
        self.closing = True
        for c in self.clients:
            if c.writer is not None:
                c.writer.close()
            if c.task is not None:
                c.task.cancel()
        tasks = [c.task for c in self.clients if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2)


def _count(items: Any) -> dict:
    out: dict = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def _group(pairs: Any) -> dict:
    out: dict = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _worker_main(conf: dict, commands: Any, out: Any) -> None:
    """Entry point of a worker process."""
    try:
        import resource  # POSIX only: raise the soft fd limit to the hard one

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    asyncio.run(_Worker(conf, commands, out).run())


# =============================================================================
# Kernel side
# =============================================================================
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
        if not self.latencies_ms:
            return float("nan")
        values = sorted(self.latencies_ms)
        k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
        return values[k]

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


_live: weakref.WeakSet[LoadGenerator] = weakref.WeakSet()


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
                target=_worker_main, args=(conf, commands, self._out), daemon=True,
                name=f"loadgen-{self.kind}-{wid}",
            )  # fmt: skip
            proc.start()
            self._commands.append(commands)
            self.processes.append(proc)
        _live.add(self)
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
                if proc.is_alive():
                    proc.terminate()
                    proc.join(1.0)
                if proc.is_alive():
                    proc.kill()
                    proc.join(1.0)
            for q in [*self._commands, self._out]:
                q.close()
                q.join_thread()
            self._commands = []
            self.processes = []
            _live.discard(self)

    @property
    def alive(self) -> int:
        return sum(p.is_alive() for p in self.processes)


def stop_all() -> None:
    """Close every load generator of this process (the clean-up cell)."""
    for gen in list(_live):
        gen.close()


atexit.register(stop_all)
