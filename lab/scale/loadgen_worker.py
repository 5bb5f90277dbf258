"""The load generator's worker process: one asyncio loop holding its share of clients.

It takes commands from the kernel (``connect``, ``report``, ``urls``,
``close``) on a queue and answers on another; it exits by itself after its
lifetime, or when the kernel (its parent) is gone. ``lab/scale/loadgen.py``
is the kernel side; ``loadgen_wire.py`` the clients.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import queue
import random
import time
from typing import Any
from urllib.parse import urlsplit

from .loadgen_wire import Client, handshake, read_sse, read_ws

CONNECT_CONCURRENCY = 64  # in-flight handshakes per worker: stays under the listen backlog
MAX_RECONNECTS = 20


class _Worker:
    def __init__(self, conf: dict, commands: Any, out: Any) -> None:
        self.wid = conf["wid"]
        self.kind = conf["kind"]
        self.urls = [urlsplit(u) for u in conf["urls"]]
        self.deadline = time.monotonic() + conf["lifetime"]
        self.commands = commands
        self.out = out
        self.clients: list[Client] = []
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
        new = [Client(i, i % len(self.urls)) for i in range(first_index, first_index + count)]
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

    async def client_loop(self, client: Client, ready: asyncio.Future) -> None:
        attempts = 0
        first = True
        while not self.closing and time.monotonic() < self.deadline:
            client.server %= len(self.urls)
            url = self.urls[client.server]
            try:
                async with self.connect_sem:
                    reader, writer = await asyncio.wait_for(handshake(self.kind, url, client), 10)
                client.open = True
                client.writer = writer
                attempts = 0
                if not ready.done():
                    ready.set_result(True)
                first = False
                await (read_ws(reader, client) if self.kind == "ws" else read_sse(reader, client))
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


def worker_main(conf: dict, commands: Any, out: Any) -> None:
    """Entry point of a worker process."""
    try:
        import resource  # POSIX only: raise the soft fd limit to the hard one

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    asyncio.run(_Worker(conf, commands, out).run())
