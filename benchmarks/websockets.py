"""WebSocket room benchmark, compared with bare Tornado handlers in the same run.

    python -m benchmarks.websockets            # full run
    python -m benchmarks.websockets --quick    # a smaller run for smoke tests

Measures, for the room (``servers.websocket``) and for a bare Tornado
baseline (an echo handler, and a broadcast loop over a plain set of
connections):

* round trips/s and p50/p99 RTT on one connection, one message at a time,
  and the server thread's CPU per message at that pace
  (websocket-client in a separate process: a chat line out, the room's
  broadcast of it back; the same line echoed for the baseline; the client
  does the same JSON work for both);
* the server's cost per message when it is the bottleneck: a raw-socket
  client keeps 16 messages in flight on one connection, and the server
  thread's own CPU clock is read before and after (``time.thread_time``),
  so the other process's work and idle waits are not counted;
* broadcast fan-out time to 1, 10, 100, 1000 clients: publish -> the last
  client has it, read on the monotonic clock (system-wide on Linux, so the
  client process's timestamps compare with the server's); room and bare
  broadcasts alternate, each to its own clients;
* memory per idle connection: the server process's RSS growth per connection.

Within each round the client alternates room and baseline, message by
message for RTT and every 100 messages for the flood, swapping which goes
first: noise from the machine then hits both alike. (On the shared 2-core
VM these figures come from, rounds that ran room and baseline one after the
other put the room anywhere from 36% cheaper to 48% dearer than the
baseline.) Each overhead figure is the median of the per-round ratios; the
per-round figures and their range are saved too.

What the room does per message that the echo does not: rate-limit, parse
and validate the JSON, number, stamp and log the event, encode it. What it
does *less* of: it writes each event's pre-built frame straight to the
socket (``servers.wsframes``, one frame for every member) where
``write_message`` builds a frame and a Task per client; the bare broadcast
baseline calls ``write_message`` per member.

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
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psutil

from benchmarks.baselines import BareBroadcastHandler, bare_app
from benchmarks.stats import percentile
from lab.lessons.websockets import connect_ws, echo_round_trip, room_round_trip
from lab.wire.websocket import RawWebSocket, encode_frame
from servers import websocket as room
from servers.runtime import ServerThread

RESULTS = Path(__file__).resolve().parent / "results" / "websockets.json"
WARMUP = 20  # round trips per connection before counting
WINDOW = 16  # messages in flight in the flood
BURST = 100  # flood messages to one server before switching to the other


# -- the bare baseline (benchmarks/baselines.py) ---------------------------------
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


def _paired_rtt_child(room_url: str, echo_url: str, n: int) -> None:
    """Round trips from a separate process (no GIL shared with the servers),
    alternating room and echo message by message: whatever the machine does
    meanwhile hits both alike, so their ratio is steadier than either."""
    room_ws = connect_ws(room_url)
    echo_ws = connect_ws(echo_url)
    room_ws.recv()  # the room's welcome
    for _ in range(WARMUP):
        room_round_trip(room_ws)
        echo_round_trip(echo_ws)
    rtts: dict[str, list[float]] = {"room": [], "bare": []}
    for i in range(n):
        pair = (("room", room_ws, room_round_trip), ("bare", echo_ws, echo_round_trip))
        for key, ws, round_trip in pair if i % 2 == 0 else pair[::-1]:
            rtts[key].append(round_trip(ws))
    room_ws.close()
    echo_ws.close()
    print(json.dumps(rtts), flush=True)


def _paired_flood_child(room_url: str, echo_url: str, bursts: int, size: int, window: int) -> None:
    """Keep ``window`` chat lines in flight on one connection until a burst
    of ``size`` has come back; alternate bursts between the room and the
    echo (swapping which goes first). The client is a raw socket with
    pre-built frames, so it stays much cheaper per message than the server
    it measures. Prints each burst's seconds."""
    frames = [
        encode_frame(0x1, json.dumps({"type": "say", "text": "ping", "ref": f"{i:08d}"}).encode())
        for i in range(size)
    ]
    room_ws = RawWebSocket(room_url, timeout=30)
    echo_ws = RawWebSocket(echo_url, timeout=30)
    buffers = {"room": room_ws.buffer, "bare": echo_ws.buffer}
    while not complete_frames(buffers["room"])[0]:  # the room greets first: not counted
        buffers["room"] += room_ws.sock.recv(65536)
    buffers["room"] = complete_frames(buffers["room"])[1]
    seconds: dict[str, list[float]] = {"room": [], "bare": []}
    for b in range(bursts):
        pair = (("room", room_ws.sock), ("bare", echo_ws.sock))
        for key, sock in pair if b % 2 == 0 else pair[::-1]:
            started = time.perf_counter()
            buffers[key] = _pipelined(sock, buffers[key], frames, window)
            seconds[key].append(time.perf_counter() - started)
    room_ws.close()
    echo_ws.close()
    print(json.dumps(seconds), flush=True)


def _pipelined(sock, buffer: bytes, frames: list[bytes], window: int) -> bytes:
    """Send ``frames`` with at most ``window`` unanswered; return once as
    many frames have come back (and what is left of the read buffer)."""
    n = len(frames)
    sent = received = 0
    while received < n:
        if sent < n and sent - received < window:
            upto = min(n, received + window)
            sock.sendall(b"".join(frames[sent:upto]))
            sent = upto
        buffer += sock.recv(65536)
        count, buffer = complete_frames(buffer)
        received += count
    return buffer


def complete_frames(buffer: bytes) -> tuple[int, bytes]:
    """How many whole (unmasked, server) frames ``buffer`` starts with, and
    what is left after them.

    Not ``lab.wire.websocket.decode_frames``: that one copies each payload into a
    ``Frame``, so its cost grows with the frame, and the room's broadcasts
    are larger than the echo's replies. Counting from the headers alone
    keeps the flood client's work the same for both servers."""
    count = pos = 0
    while len(buffer) - pos >= 2:
        length, head = buffer[pos + 1] & 0x7F, 2
        if length >= 126:
            head = 4 if length == 126 else 10
            if len(buffer) - pos < head:
                break
            length = int.from_bytes(buffer[pos + 2 : pos + head], "big")
        if len(buffer) - pos < head + length:
            break
        count += 1
        pos += head + length
    return count, buffer[pos:]


def paired_in_child(servers: dict[str, ServerThread], child_args: list[str]) -> tuple:
    """Run a paired child against both servers; return what it printed and
    each server thread's CPU seconds meanwhile (``time.thread_time``: the
    child's work and idle waits are not counted). Each server is idle but
    for the child, so that CPU is the cost of the child's messages."""
    before = {k: srv.call(time.thread_time) for k, srv in servers.items()}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.websockets", *child_args],
        capture_output=True, text=True, timeout=600, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    cpu = {k: srv.call(time.thread_time) - before[k] for k, srv in servers.items()}
    return json.loads(out.stdout.strip().splitlines()[-1]), cpu


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


def fanout(
    room_server: ServerThread, bare_server: ServerThread, sizes: list[int], repeats: int
) -> dict:
    """Publish -> the last of ``n`` clients has it, for the room and the bare
    broadcast loop. Each has its own ``n`` clients (a child process each)
    connected throughout; broadcasts alternate between the two, swapping
    which goes first, as the other measurements do."""
    urls = {
        "room": f"{room_server.ws_url}/ws/room?token=demo",
        "bare": f"{bare_server.ws_url}/ws/bare",
    }
    results: dict[str, dict] = {"room": {}, "bare": {}}
    for n in sizes:
        clients: dict[str, ClientProcess] = {}
        try:
            for key, url in urls.items():
                clients[key] = ClientProcess(url, n)
            times: dict[str, list[float]] = {"room": [], "bare": []}
            for k in range(repeats + 1):  # the first one is a warm-up
                for key in ("room", "bare") if k % 2 == 0 else ("bare", "room"):
                    if key == "bare":
                        sent = time.monotonic_ns()
                        bare_server.call(bare_broadcast, k)
                    else:
                        sent = room_server.publish("bench", {"bench": k}).sent_ns
                    last = clients[key].wait_all(k)
                    if k:
                        times[key].append((last - sent) / 1e6)
            for key, values in times.items():
                results[key][n] = {"p50_ms": percentile(values, 50), "max_ms": max(values)}
        finally:
            for process in clients.values():
                process.close()
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
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--child", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--rtt-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--flood-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_clients(args.child[0], int(args.child[1])))
        return {}
    if args.rtt_child:
        room_url, echo_url, n = args.rtt_child
        _paired_rtt_child(room_url, echo_url, int(n))
        return {}
    if args.flood_child:
        room_url, echo_url, bursts, size, window = args.flood_child
        _paired_flood_child(room_url, echo_url, int(bursts), int(size), int(window))
        return {}

    rounds = 3 if args.quick else 12
    n_rtt = 200 if args.quick else 500  # per round
    n_flood = 1000 if args.quick else 5000  # per round
    sizes = [1, 10, 100] if args.quick else [1, 10, 100, 1000]
    repeats = 3 if args.quick else 20  # broadcasts per size, to each
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
        "clock": "time.perf_counter for RTT; time.thread_time of the server thread for CPU; "
        "time.monotonic_ns (system-wide) for fan-out",
        "rtt_client": f"websocket-client in a separate process, {n_rtt} round trips per round "
        f"to each after {WARMUP} warm-up ones, alternating room and echo message by message; "
        "room: a chat line until its broadcast returns; bare: the same line echoed",
        "throughput_client": f"raw socket in a separate process, {WINDOW} messages in flight, "
        f"{n_flood} per round to each, alternating room and echo every {BURST} messages",
        "rounds": rounds,
    }
    try:
        # Each client alternates room and bare message by message (RTT) or
        # burst by burst (flood), swapping which goes first, so machine noise
        # and warm-up hit both alike. Clients run in their own process: in
        # the servers' process they would share its GIL, and every round
        # trip would pay a GIL hand-off that says more about CPython than
        # about the server.
        servers = {"room": room_server, "bare": bare_server}
        urls = [f"{room_server.ws_url}/ws/room?token=demo", f"{bare_server.ws_url}/ws/echo"]
        rtts: dict[str, list[float]] = {"room": [], "bare": []}
        per_round: dict[str, list] = {"rtt_p50_ms": [], "cpu_us_one_at_a_time": [], "flood": []}
        for _ in range(rounds):
            round_rtts, cpu = paired_in_child(servers, ["--rtt-child", *urls, str(n_rtt)])
            for key in servers:
                rtts[key] += round_rtts[key]
            per_round["rtt_p50_ms"].append({k: percentile(v, 50) for k, v in round_rtts.items()})
            # The CPU includes the handshake and the warm-up round trips.
            per_round["cpu_us_one_at_a_time"].append(
                {k: cpu[k] / (n_rtt + WARMUP) * 1e6 for k in servers}
            )
            bursts = n_flood // BURST
            args_flood = ["--flood-child", *urls, str(bursts), str(BURST), str(WINDOW)]
            seconds, cpu = paired_in_child(servers, args_flood)
            per_round["flood"].append(
                {
                    k: {
                        "messages_per_s": bursts * BURST / sum(seconds[k]),
                        "server_cpu_us_per_message": cpu[k] / (bursts * BURST) * 1e6,
                    }
                    for k in servers
                }
            )

        def summary(values: list[float]) -> dict:
            return {
                "round_trips_per_s": len(values) / (sum(values) / 1000),
                "p50_ms": percentile(values, 50),
                "p99_ms": percentile(values, 99),
            }

        def median_of(rows: list[dict], field: str | None = None) -> dict:
            pick = (lambda row, k: row[k][field]) if field else (lambda row, k: row[k])
            return {k: statistics.median(pick(row, k) for row in rows) for k in ("room", "bare")}

        out["rtt"] = {"room": summary(rtts["room"]), "bare_echo": summary(rtts["bare"])}
        one_at_a_time = median_of(per_round["cpu_us_one_at_a_time"])
        out["server_cpu_us_per_message_one_at_a_time"] = one_at_a_time
        out["flood"] = {
            "messages_per_s": median_of(per_round["flood"], "messages_per_s"),
            "server_cpu_us_per_message": median_of(per_round["flood"], "server_cpu_us_per_message"),
        }
        out["per_round"] = per_round
        out["fanout_ms"] = fanout(room_server, bare_server, sizes, repeats)
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
    out["room_overhead_pct"] = overhead(out, sizes[-1])
    print_table(out, sizes)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, default=str))
    print(f"\nwritten to {args.output}")
    return out


def overhead(out: dict, largest: int) -> dict:
    """The room's cost over the bare baseline, in percent (positive: the room
    is slower). Per-round ratios, then their median: one noisy round cannot
    swing it."""

    rounds = out["per_round"]
    per_round_pct: dict[str, list[float]] = {}

    def median_ratio(key: str, rows: list[dict], pick) -> float:
        pct = [100 * (pick(row, "room") / pick(row, "bare") - 1) for row in rows]
        per_round_pct[key] = pct
        return statistics.median(pct)

    fan = {k: {n: v["p50_ms"] for n, v in out["fanout_ms"][k].items()} for k in ("room", "bare")}
    result: dict[str, Any] = {
        "server_cpu_per_message": median_ratio(
            "server_cpu_per_message",
            rounds["flood"],
            lambda row, k: row[k]["server_cpu_us_per_message"],
        ),
        "server_cpu_per_message_one_at_a_time": median_ratio(
            "server_cpu_per_message_one_at_a_time",
            rounds["cpu_us_one_at_a_time"],
            lambda row, k: row[k],
        ),
        # Fewer messages/s is overhead: bare/room, not room/bare.
        "messages_per_s": median_ratio(
            "messages_per_s", rounds["flood"], lambda row, k: 1 / row[k]["messages_per_s"]
        ),
        "rtt_p50": median_ratio("rtt_p50", rounds["rtt_p50_ms"], lambda row, k: row[k]),
        f"fanout_p50_at_{largest}": 100 * (fan["room"][largest] / fan["bare"][largest] - 1),
        "target": "within 10%",
    }
    result["within_target"] = {k: v <= 10 for k, v in result.items() if isinstance(v, float)}
    # How far single rounds disagree: on a shared 2-core VM the noise between
    # rounds is larger than the difference being measured, hence the median.
    result["per_round_range"] = {k: [min(v), max(v)] for k, v in per_round_pct.items()}
    return result


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
    f = out["flood"]
    rate, cpu = f["messages_per_s"], f["server_cpu_us_per_message"]
    print(f"{'msgs/s, 16 in flight':28}{rate['room']:>12.0f}{rate['bare']:>14.0f}")
    print(f"{'server CPU/message (us)':28}{cpu['room']:>12.1f}{cpu['bare']:>14.1f}")
    one = out["server_cpu_us_per_message_one_at_a_time"]
    print(f"{'  ...one at a time (us)':28}{one['room']:>12.1f}{one['bare']:>14.1f}")
    m = out["memory_per_idle_connection_bytes"]
    for key, label in (("python_heap", "heap/idle conn (KiB)"), ("rss", "RSS/idle conn (KiB)")):
        print(f"{label:28}{m['room'][key] / 1024:>12.1f}{m['bare'][key] / 1024:>14.1f}")
    load = out["machine"].get("load_average_at_start")
    if load:
        print(f"load average at start: {load[0]:.1f} on {out['machine']['cpus']} CPUs")
    rounds = out["rounds"]
    print(f"room overhead over bare Tornado (median of {rounds} rounds; target: within 10%):")
    spread = out["room_overhead_pct"]["per_round_range"]
    for key, value in out["room_overhead_pct"].items():
        if isinstance(value, float):
            low_high = (
                f"  (rounds: {spread[key][0]:+.0f}% to {spread[key][1]:+.0f}%)"
                if key in spread
                else ""
            )
            print(f"  {key:38}{value:>+8.1f}%{low_high}")


if __name__ == "__main__":
    main()
