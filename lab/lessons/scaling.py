"""Resource readings and plots for the scaling notebook.

``snapshot(pid)`` reads a process's memory (RSS), open file descriptors (or
handles on Windows), CPU seconds and the descriptor limit. The limit comes
from the ``resource`` module, which exists on POSIX only: on Windows there is
no ``ulimit -n`` (sockets are handles, limited by memory), so ``fd_limit`` is
``None`` and the table says so.
"""

from __future__ import annotations

import base64
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psutil

try:  # POSIX only
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


@dataclass
class Snapshot:
    pid: int
    rss_bytes: int
    fds: int
    fd_limit: int | None
    cpu_seconds: float

    def __sub__(self, other: Snapshot) -> dict[str, float]:
        return {
            "rss_bytes": self.rss_bytes - other.rss_bytes,
            "fds": self.fds - other.fds,
            "cpu_seconds": self.cpu_seconds - other.cpu_seconds,
        }


def fd_limit() -> int | None:
    """The soft ``ulimit -n`` of this process; None where there is none."""
    if resource is None:
        return None
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def snapshot(pid: int | None = None) -> Snapshot:
    proc = psutil.Process(pid or os.getpid())
    fds = proc.num_fds() if hasattr(proc, "num_fds") else proc.num_handles()
    cpu = proc.cpu_times()
    limit = fd_limit() if (pid is None or pid == os.getpid()) else _limit_of(proc)
    return Snapshot(proc.pid, proc.memory_info().rss, fds, limit, cpu.user + cpu.system)


def _limit_of(proc: psutil.Process) -> int | None:
    try:
        return proc.rlimit(psutil.RLIMIT_NOFILE)[0]  # Linux only
    except (AttributeError, psutil.Error):
        return fd_limit()


def per_connection(before: Snapshot, after: Snapshot, n: int) -> dict[str, Any]:
    """Memory and descriptors per connection between two snapshots."""
    delta = after - before
    n = max(1, n)
    return {
        "connections": n,
        "rss_delta_mib": delta["rss_bytes"] / 2**20,
        "kib_per_connection": delta["rss_bytes"] / 1024 / n,
        "fds_in_use": after.fds,
        "fd_limit": after.fd_limit,
        "fd_headroom": None if after.fd_limit is None else after.fd_limit - after.fds,
        "cpu_seconds": delta["cpu_seconds"],
    }


def resource_table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown table of ``per_connection`` results keyed by label."""
    head = "| | connections | RSS added | per connection | fds in use / `ulimit -n` | CPU s |\n"
    head += "|---|---:|---:|---:|---:|---:|\n"
    for label, r in rows.items():
        limit = "no limit (Windows)" if r["fd_limit"] is None else str(r["fd_limit"])
        head += (
            f"| {label} | {r['connections']} | {r['rss_delta_mib']:.1f} MiB | "
            f"{r['kib_per_connection']:.1f} KiB | {r['fds_in_use']} / {limit} | "
            f"{r['cpu_seconds']:.2f} |\n"
        )
    return head


def plot_fanout(rows: list[dict[str, Any]], benchmark: dict | None = None, ax: Any = None) -> Any:
    """Server fan-out time and client p99 against N, naive vs encode-once.

    ``rows``: dicts with ``n``, ``mode``, ``fanout_ms``, ``p99_ms``.
    ``benchmark``: optional ``benchmarks/results/scaling.json`` content, whose
    10,000-connection points are drawn hollow and labelled as such.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"naive": "tab:red", "once": "tab:blue"}
    for mode in ("naive", "once"):
        pts = sorted((r["n"], r["fanout_ms"], r["p99_ms"]) for r in rows if r["mode"] == mode)
        if not pts:
            continue
        ns, fan, p99 = zip(*pts, strict=False)
        ax[0].plot(ns, fan, "o-", color=colors[mode], label=f"{mode} (this run)")
        ax[1].plot(ns, p99, "o-", color=colors[mode], label=f"{mode} (this run)")
    for point in (benchmark or {}).get("fanout", []):
        if point.get("kind") != "ws":
            continue
        mode = point["mode"]
        kw = {"mfc": "none", "color": colors.get(mode, "k"), "ms": 9}
        ax[0].plot([point["n"]], [point["fanout_ms"]], "s", label=f"{mode}, benchmark", **kw)
        ax[1].plot([point["n"]], [point["p99_ms"]], "s", label=f"{mode}, benchmark", **kw)
    titles = ("server: time to write the frame to all N", "clients: p99 arrival")
    for a, title in zip(ax, titles, strict=False):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("connected clients N")
        a.set_ylabel("ms")
        a.set_title(title)
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    return ax


def plot_arrivals(deliveries: dict[str, Any], ax: Any = None) -> Any:
    """Histogram of per-client arrival latency for a few ``Delivery`` objects."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for label, d in deliveries.items():
        if d.latencies_ms:
            ax.hist(d.latencies_ms, bins=30, alpha=0.6, label=f"{label} (p99 {d.p99_ms:.1f} ms)")
    ax.set_xlabel("arrival - publish (ms)")
    ax.set_ylabel("clients")
    ax.legend(fontsize=8)
    return ax


def n_slider(default: int = 200, maximum: int = 10_000) -> Any:
    """The N slider (its programmatic twin: ``slider.value = ...``)."""
    import ipywidgets as widgets

    return widgets.IntSlider(
        value=default, min=10, max=maximum, step=10, description="N clients",
        continuous_update=False, style={"description_width": "initial"},
        layout=widgets.Layout(width="480px"),
    )  # fmt: skip


def measure_fanout(
    server: Any, gen: Any, modes: tuple[str, ...] = ("naive", "once"), repeats: int = 3
) -> list[dict[str, Any]]:
    """Broadcast ``repeats`` events per mode from an in-process fan-out
    server to the clients ``gen`` holds; one row per mode with the median
    server-side fan-out time, client p50/p99 and delivery counts."""
    from statistics import median

    from servers import fanout

    b = server.state  # the fan-out Broadcaster
    rows = []
    for mode in modes:
        fanout.set_mode(server, mode)
        fan, p50, p99, delivered, clients = [], [], [], [], 0
        for i in range(repeats):
            event = server.publish("broadcast", {"mode": mode, "i": i, "text": "x" * 64})
            d = gen.report(event.seq, timeout=30)
            record = server.call(lambda s=event.seq: next(f for f in b.fanouts if f["seq"] == s))
            fan.append(record["seconds"] * 1000)
            p50.append(d.p50_ms)
            p99.append(d.p99_ms)
            delivered.append(d.delivered)
            clients = d.clients
        rows.append(
            {
                "n": clients,
                "mode": mode,
                "fanout_ms": median(fan),
                "p50_ms": median(p50),
                "p99_ms": median(p99),
                "delivered_min": min(delivered),
                "clients": clients,
            }
        )
    return rows


def stuck_websocket(url: str) -> socket.socket:
    """A WebSocket client that completes the handshake, then never reads:
    a frozen tab, a process stopped in a debugger. Its receive buffer is
    made small, so the server notices soon. Close it when you are done."""
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect((parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):  # one byte at a time: read the 101, nothing more
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("the server closed the connection during the handshake")
        head += byte
    if not head.startswith(b"HTTP/1.1 101"):
        sock.close()
        raise ConnectionError(f"no upgrade: {head.splitlines()[0]!r}")
    return sock


def fanout_table(rows: list[dict[str, Any]]) -> str:
    """``measure_fanout``'s rows as a Markdown table."""
    head = (
        "| N | mode | server fan-out (ms) | client p50 (ms) | client p99 (ms) | delivered |\n"
        "|---:|---|---:|---:|---:|---:|\n"
    )
    return head + "\n".join(
        f"| {r['n']} | {r['mode']} | {r['fanout_ms']:.2f} | {r['p50_ms']:.1f} | "
        f"{r['p99_ms']:.1f} | {r['delivered_min']}/{r['clients']} |"
        for r in rows
    )


def benchmark_results() -> dict | None:
    """``benchmarks/results/scaling.json`` (the 10,000-connection run), if present."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "scaling.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@dataclass
class SlowConsumer:
    grown_mib: float  # the server's memory growth meanwhile
    cut: int  # slow consumers the server cut
    kept_up: Any  # the reader's ``Delivery`` for the last event


def slow_consumer(server: Any, budget: int = 256 * 1024) -> SlowConsumer:
    """One client that never reads, one that keeps up; 100 x 100 events of
    ~2 KB (20 MB for each client) from an in-process fan-out server, with a
    ``max_pending_bytes`` budget (restored afterwards)."""
    from lab.scale.loadgen import LoadGenerator
    from servers import fanout

    fanout.set_max_pending_bytes(server, budget)
    cut_before = fanout.stats(server)["slow_consumers"]
    stuck = stuck_websocket(server.url)  # connects, then never reads
    reader = LoadGenerator(server.url, kind="ws", processes=1).start()
    try:
        reader.connect(1, progress=False)
        pad = {"pad": "x" * 2000}  # one ~2 KB payload, shared by every event
        before = snapshot()
        for _ in range(100):
            for _ in range(100):  # 200 KB: less than the budget, even if the kernel held none
                last = server.publish("big", pad).seq
            kept_up = reader.report(last, timeout=10)  # next batch once the reader has this one
        grown = (snapshot().rss_bytes - before.rss_bytes) / 2**20
        cut = fanout.stats(server)["slow_consumers"] - cut_before
    finally:
        stuck.close()
        reader.close()
        fanout.set_max_pending_bytes(server, fanout.MAX_PENDING_BYTES)
    return SlowConsumer(grown, cut, kept_up)
