"""Tables and plots for notebook 06 (network weather).

``lab.weather.race.Race`` measures; these show its rows the same way every
time, so the notebook's cells stay about the lesson.
"""

from __future__ import annotations

import threading
from typing import Any

from lab.lessons.choosing import COLORS  # one colour per transport in every plot
from lab.weather.presets import DEMO_FACTOR, PRESETS

# Threads of the servers, relays, clients and the dials (``leftover_threads``).
THREAD_PREFIXES = ("server-", "weather-", "short-polling", "long-polling", "push-stream",
                   "sse", "ws-client")  # fmt: skip
COLUMNS = [
    ("label", "transport"),
    ("delivered", "delivered"),
    ("lost", "lost"),
    ("arrived_twice", "arrived twice"),
    ("processed_twice", "processed twice"),
    ("p50_ms", "p50 ms"),
    ("connections", "new connections"),
    ("retries", "retries"),
    ("silent_drops", "silent drops"),
    ("notice_s", "noticed after s"),
    ("bytes", "bytes"),
]


def _cell(key: str, row: dict) -> str:
    value = row.get(key)
    if key == "notice_s":
        if row.get("stuck"):
            return "**never: stuck**"
        return "-" if value is None else f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.0f}"
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def table(rows: list[dict], title: str = "") -> Any:
    """The race's rows as a Markdown table (one line per transport)."""
    from IPython.display import Markdown

    head = "| " + " | ".join(h for _, h in COLUMNS) + " |"
    lines = [head, "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(k, r) for k, _ in COLUMNS) + " |" for r in rows]
    return Markdown((f"**{title}**\n\n" if title else "") + "\n".join(lines))


def preset_table() -> Any:
    """Every preset: its real dials, what the demo compresses, where the numbers come from."""
    from IPython.display import Markdown

    lines = ["| preset | latency / jitter ms | other dials (real) | demo | source |",
             "|---|---|---|---|---|"]  # fmt: skip
    for p in PRESETS.values():
        w, d = p.weather, p.demo()
        other = []
        if w.bandwidth_kbps:
            other.append(f"{w.bandwidth_kbps:g} kbit/s")
        if w.idle_timeout_s:
            other.append(f"NAT idle {w.idle_timeout_s:g} s")
        if w.flap_every_s:
            other.append(f"flap every {w.flap_every_s:g} s")
        if w.buffer_bytes:
            other.append(f"buffers {w.buffer_bytes // 1024} KiB")
        demo = ", ".join(
            f"{label} {v:g} s"
            for label, v in (("idle", d.idle_timeout_s), ("flap", d.flap_every_s))
            if v
        )
        lines.append(
            f"| {p.name} | {w.latency_ms:g} / {w.jitter_ms:g} | {', '.join(other) or '-'} | "
            f"{demo or 'as is'} | {p.source} |"
        )
    return Markdown("\n".join(lines))


def plot_latency(before: list[dict], after: list[dict], names: tuple[str, str]) -> Any:
    """Median latency per transport on two networks, side by side."""
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(9, 3.2))
    x = range(len(before))
    for shift, rows, name, alpha in ((-0.2, before, names[0], 0.5), (0.2, after, names[1], 1.0)):
        ax.bar([i + shift for i in x], [r["p50_ms"] or 0 for r in rows], width=0.4, alpha=alpha,
               color=[COLORS[r["transport"]] for r in rows], label=name)  # fmt: skip
    ax.set_xticks(list(x), [r["label"] for r in before])
    ax.set_ylabel("median latency (ms)")
    ax.legend()
    return ax


def polling_penalty(rows: list[dict], push: str = "sse") -> float:
    """How much later short polling delivers than a push stream (mean ms)."""
    from lab.weather.race import by_transport

    at = by_transport(rows)
    return at["short_polling"]["mean_ms"] - at[push]["mean_ms"]


def bytes_per_beat(rows: list[dict]) -> dict[str, float]:
    """Bytes one heartbeat cost on each stream, measured in a quiet pause."""
    return {
        r["transport"]: r["quiet_bytes"] / r["quiet_heartbeats"]
        for r in rows
        if r.get("quiet_heartbeats")
    }


def plot_heartbeat_cost(per_beat: dict[str, float], idle_timeout_s: float) -> Any:
    """Wake-ups and bytes per hour against the heartbeat interval (real seconds)."""
    import matplotlib.pyplot as plt

    intervals = [5, 10, 15, 20, 25, 29, 45, 60, 120, 300]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    left.plot(intervals, [3600 / i for i in intervals], "k.-")
    left.set_ylabel("radio wake-ups per hour (at most)")
    for key, beat in per_beat.items():
        right.plot(intervals, [3600 / i * beat for i in intervals], ".-", color=COLORS[key],
                   label=f"{key}: {beat:.0f} B/beat")  # fmt: skip
    right.set_ylabel("bytes per hour (application bytes)")
    right.legend(fontsize=8)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("heartbeat interval (s, real time)")
        ax.axvline(idle_timeout_s, color="#b00", ls=":")
        ax.axvspan(idle_timeout_s, intervals[-1], color="#b00", alpha=0.08)
    fig.suptitle(f"Red: intervals longer than the NAT's {idle_timeout_s:g} s, so it forgets")
    fig.tight_layout()
    return left, right


def real_seconds(demo_s: float) -> float:
    return demo_s * DEMO_FACTOR


def leftover_threads() -> list[str]:
    """Names of the race's threads still alive (none, after a clean close)."""
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIXES)]
