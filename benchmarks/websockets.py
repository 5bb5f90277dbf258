"""WebSocket room benchmark, compared with bare Tornado handlers in the same run.

    python -m benchmarks.websockets            # full run
    python -m benchmarks.websockets --quick    # a smaller run for smoke tests

Measures, for the room (``servers.websocket``) and for a bare Tornado
baseline (an echo handler, and a broadcast loop over a plain set of
connections):

* round trips/s and p50/p99 RTT on one connection (websocket-client in this
  process: a chat line out, the room's broadcast of it back; the echo for the
  baseline);
* broadcast fan-out time to 1, 10, 100, 1000 clients: publish -> the last
  client has it, read on the monotonic clock (system-wide on Linux, so the
  client process's timestamps compare with the server's);
* memory per idle connection: the server process's RSS growth per connection.

The clients of the fan-out and memory runs live in a child process (asyncio +
Tornado's websocket client), so the server's process holds only server
state. Prints a table; writes ``benchmarks/results/websockets.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import psutil
from tornado.web import Application
from tornado.websocket import WebSocketHandler

from lab.ws_experiments import percentile, rtt_echo, rtt_websocket
from servers import websocket as room
from servers.runtime import ServerThread

RESULTS = Path(__file__).resolve().parent / "results" / "websockets.json"


# -- the bare baseline -------------------------------------------------------------
class BareBroadcastHandler(WebSocketHandler):
    """A plain set of connections and a loop of write_message: the least a
    Tornado broadcast can do."""

    members: set = set()

    def check_origin(self, origin: str) -> bool:
        return True

    def open(self) -> None:
        self.set_nodelay(True)
        self.members.add(self)

    def on_close(self) -> None:
        self.members.discard(self)


def bare_app(hub) -> Application:
    BareBroadcastHandler.members = set()
    return Application(
        [(r"/ws/bare", BareBroadcastHandler), (r"/ws/echo", room.EchoHandler)], hub=hub
    )


def bare_broadcast(k: int) -> int:
    text = json.dumps({"bench": k, "sent_ns": time.monotonic_ns()})
    for member in list(BareBroadcastHandler.members):
        member.write_message(text)
    return time.monotonic_ns()


# -- the client process --------------------------------------------------------------
async def _clients(url: str, n: int) -> None:
    from tornado.websocket import websocket_connect

    seen: dict[int, list[int]] = {}
    conns = []
    for start in range(0, n, 100):
        batch = await asyncio.gather(
            *(websocket_connect(url) for _ in range(start, min(n, start + 100)))
        )
        conns += batch
    print(f"ready {len(conns)}", flush=True)

    async def reader(conn) -> None:
        while (message := await conn.read_message()) is not None:
            now = time.monotonic_ns()
            data = json.loads(message)
            k = data.get("payload", data).get("bench")
            if k is None:
                continue
            entry = seen.setdefault(k, [0, 0])
            entry[0] += 1
            entry[1] = max(entry[1], now)
            if entry[0] == n:
                print(f"got {k} {entry[1]}", flush=True)

    tasks = [asyncio.ensure_future(reader(c)) for c in conns]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)  # parent says stop
    for c in conns:
        c.close()
    for t in tasks:
        t.cancel()


def _rtt_child(kind: str, base_ws_url: str, n: int) -> None:
    """Round trips from a separate process: no GIL shared with the server."""
    runner = rtt_websocket if kind == "room" else rtt_echo
    print(json.dumps(runner(base_ws_url, n).rtts_ms), flush=True)


def rtt_in_child(kind: str, base_ws_url: str, n: int) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.websockets", "--rtt-child", kind, base_ws_url, str(n)],
        capture_output=True, text=True, timeout=300, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


class ClientProcess:
    def __init__(self, url: str, n: int) -> None:
        self.n = n
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.websockets", "--child", url, str(n)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        line = self._line(120)
        if not line.startswith("ready"):
            raise RuntimeError(f"client process failed to start: {line!r}")

    def _line(self, timeout: float) -> str:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError(f"no answer from the client process in {timeout} s")
        return self.proc.stdout.readline().strip()

    def wait_all(self, k: int, timeout: float = 30) -> int:
        """monotonic_ns at which the last of the n clients got broadcast k."""
        while True:
            parts = self._line(timeout).split()
            if parts[:2] == ["got", str(k)]:
                return int(parts[2])

    def close(self) -> None:
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)


# -- measurements ---------------------------------------------------------------------
def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


def fanout(server: ServerThread, url: str, sizes: list[int], repeats: int, bare: bool) -> dict:
    results = {}
    for n in sizes:
        clients = ClientProcess(url, n)
        try:
            times = []
            for k in range(repeats + 1):  # the first one is a warm-up
                if bare:
                    sent = time.monotonic_ns()
                    server.call(bare_broadcast, k)
                else:
                    sent = server.publish("bench", {"bench": k}).sent_ns
                last = clients.wait_all(k)
                if k:
                    times.append((last - sent) / 1e6)
            results[n] = {"p50_ms": percentile(times, 50), "max_ms": max(times)}
        finally:
            clients.close()
    return results


def memory_per_connection(server: ServerThread, url: str, n: int) -> dict:
    """Python heap traced by tracemalloc (exact, whatever the allocator
    reuses) and process RSS growth (what the OS sees; noisy, since freed
    memory from an earlier run is reused), per connection."""
    time.sleep(0.3)
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    rss_before = rss()
    clients = ClientProcess(url, n)
    try:
        time.sleep(0.5)
        traced_after = tracemalloc.get_traced_memory()[0]
        rss_after = rss()
    finally:
        tracemalloc.stop()
        clients.close()
    return {
        "python_heap": (traced_after - traced_before) / n,
        "rss": (rss_after - rss_before) / n,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.websockets", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer round trips and clients")
    parser.add_argument("--child", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--rtt-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_clients(args.child[0], int(args.child[1])))
        return {}
    if args.rtt_child:
        _rtt_child(args.rtt_child[0], args.rtt_child[1], int(args.rtt_child[2]))
        return {}

    n_rtt = 500 if args.quick else 3000
    sizes = [1, 10, 100] if args.quick else [1, 10, 100, 1000]
    repeats = 3 if args.quick else 10
    mem_n = 200 if args.quick else 1000

    options = {"rate": 1e9, "burst": 10**9, "send_queue": 10_000}
    room_server = ServerThread(room.app_factory(**options), name="bench-room").start()
    bare_server = ServerThread(bare_app, name="bench-bare").start()
    out: dict = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "note": "2-core machine shared with other jobs; numbers are indicative",
            "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "command": "python -m benchmarks.websockets" + (" --quick" if args.quick else ""),
        "clock": "time.perf_counter for RTT; time.monotonic_ns (system-wide) for fan-out",
        "rtt_client": "websocket-client in a separate process; 20 warm-up round trips per "
        "round excluded; room: a chat line until its broadcast returns; bare: echo",
    }
    try:
        # Interleave room and bare rounds so machine noise hits both alike.
        # The client runs in its own process: in the server's process it
        # would share the GIL, and every round trip would pay a GIL hand-off
        # that says more about CPython than about the server.
        # Server CPU per message (the server thread's own CPU clock) is
        # steadier than wall-clock RTT on a shared machine.
        room_rtts, bare_rtts = [], []
        cpu = {"room": 0.0, "bare": 0.0}
        for _ in range(3):
            for key, srv, kind, rtts in (
                ("room", room_server, "room", room_rtts),
                ("bare", bare_server, "echo", bare_rtts),
            ):
                before = srv.call(time.thread_time)
                rtts += rtt_in_child(kind, srv.ws_url, n_rtt // 3)
                cpu[key] += srv.call(time.thread_time) - before
        # Each child run also does a handshake and 20 warm-up round trips.
        per_message = {k: v / (len(room_rtts) + 3 * 20) * 1e6 for k, v in cpu.items()}

        def summary(rtts):
            return {
                "round_trips_per_s": len(rtts) / (sum(rtts) / 1000),
                "p50_ms": percentile(rtts, 50),
                "p99_ms": percentile(rtts, 99),
            }

        out["rtt"] = {"room": summary(room_rtts), "bare_echo": summary(bare_rtts)}
        out["server_cpu_us_per_message"] = per_message
        out["fanout_ms"] = {
            "room": fanout(room_server, f"{room_server.ws_url}/ws/room?token=demo", sizes,
                           repeats, bare=False),
            "bare": fanout(bare_server, f"{bare_server.ws_url}/ws/bare", sizes, repeats, bare=True),
        }  # fmt: skip
        out["memory_per_idle_connection_bytes"] = {
            "room": memory_per_connection(
                room_server, f"{room_server.ws_url}/ws/room?token=demo", mem_n
            ),
            "bare": memory_per_connection(bare_server, f"{bare_server.ws_url}/ws/bare", mem_n),
            "connections": mem_n,
        }
    finally:
        room_server.stop()
        bare_server.stop()

    if hasattr(os, "getloadavg"):
        out["machine"]["load_average_at_end"] = os.getloadavg()
    r, b = out["rtt"]["room"], out["rtt"]["bare_echo"]
    out["room_overhead_pct"] = {
        "rtt_p50": 100 * (r["p50_ms"] / b["p50_ms"] - 1),
        "server_cpu_per_message": 100
        * (out["server_cpu_us_per_message"]["room"] / out["server_cpu_us_per_message"]["bare"] - 1),
        "fanout_p50_at_max_n": 100
        * (
            out["fanout_ms"]["room"][sizes[-1]]["p50_ms"]
            / out["fanout_ms"]["bare"][sizes[-1]]["p50_ms"]
            - 1
        ),
        "target": "within 10%",
    }
    print_table(out, sizes)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nwritten to {RESULTS}")
    return out


def print_table(out: dict, sizes: list[int]) -> None:
    r, b = out["rtt"]["room"], out["rtt"]["bare_echo"]
    print(f"{'':28}{'room':>12}{'bare Tornado':>14}")
    rt = "round trips/s (1 conn)"
    print(f"{rt:28}{r['round_trips_per_s']:>12.0f}{b['round_trips_per_s']:>14.0f}")
    print(f"{'RTT p50 (ms)':28}{r['p50_ms']:>12.3f}{b['p50_ms']:>14.3f}")
    print(f"{'RTT p99 (ms)':28}{r['p99_ms']:>12.3f}{b['p99_ms']:>14.3f}")
    for n in sizes:
        fr, fb = out["fanout_ms"]["room"][n], out["fanout_ms"]["bare"][n]
        print(f"{f'fan-out to {n} p50 (ms)':28}{fr['p50_ms']:>12.2f}{fb['p50_ms']:>14.2f}")
    c = out["server_cpu_us_per_message"]
    print(f"{'server CPU/message (us)':28}{c['room']:>12.1f}{c['bare']:>14.1f}")
    m = out["memory_per_idle_connection_bytes"]
    for key, label in (("python_heap", "heap/idle conn (KiB)"), ("rss", "RSS/idle conn (KiB)")):
        print(f"{label:28}{m['room'][key] / 1024:>12.1f}{m['bare'][key] / 1024:>14.1f}")
    load = out["machine"].get("load_average_at_start")
    if load:
        print(f"load average at start: {load[0]:.1f} on {out['machine']['cpus']} CPUs")
    o = out["room_overhead_pct"]
    print(f"room overhead: RTT p50 {o['rtt_p50']:+.0f}%, server CPU/message "
          f"{o['server_cpu_per_message']:+.0f}%, fan-out p50 at {sizes[-1]} "
          f"{o['fanout_p50_at_max_n']:+.0f}% (target: within 10%)")  # fmt: skip


if __name__ == "__main__":
    main()
