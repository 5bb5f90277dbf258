"""The WebSocket benchmark's own parts, and a quick run of the real thing.

No timing is asserted: the figures belong to the benchmark's JSON. What is
checked is that every figure is there, measured (positive, finite), and
renders in the README's table.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.websockets import complete_frames, overhead
from lab.wire.websocket import encode_frame

ROOT = Path(__file__).resolve().parents[1]


def server_frame(payload: bytes) -> bytes:
    return encode_frame(0x1, payload, masked=False)


@pytest.mark.parametrize("size", [5, 125, 126, 300, 70_000])
def test_complete_frames_counts_whole_frames_and_keeps_the_rest(size):
    one = server_frame(b"x" * size)
    data = one + one + one[:-1]
    count, rest = complete_frames(data)
    assert count == 2
    assert rest == one[:-1]
    assert complete_frames(rest + one[-1:]) == (1, b"")
    assert complete_frames(one[:1]) == (0, one[:1])  # not even a whole header


def test_overhead_is_the_median_of_per_round_ratios_with_their_range():
    rounds = [(100, 100), (100, 130), (100, 105)]  # (bare, room): +0%, +30%, +5%
    out = {
        "per_round": {
            "flood": [
                {
                    "room": {"server_cpu_us_per_message": b, "messages_per_s": 1e6 / b},
                    "bare": {"server_cpu_us_per_message": a, "messages_per_s": 1e6 / a},
                }
                for a, b in rounds
            ],
            "cpu_us_one_at_a_time": [{"room": b, "bare": a} for a, b in rounds],
            "rtt_p50_ms": [{"room": b / 100, "bare": a / 100} for a, b in rounds],
        },
        "fanout_ms": {"room": {1000: {"p50_ms": 90.0}}, "bare": {1000: {"p50_ms": 100.0}}},
    }
    result = overhead(out, 1000)
    for key in ("server_cpu_per_message", "server_cpu_per_message_one_at_a_time", "rtt_p50"):
        assert result[key] == pytest.approx(5.0)
        assert result["per_round_range"][key] == pytest.approx([0.0, 30.0])
        assert result["within_target"][key] is True
    assert result["messages_per_s"] == pytest.approx(5.0)  # fewer messages/s counts as overhead
    assert result["fanout_p50_at_1000"] == pytest.approx(-10.0)


def test_a_quick_run_measures_every_figure_and_renders(tmp_path):
    output = tmp_path / "websockets.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.websockets", "--quick", "--output", str(output)],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    d = json.loads(output.read_text(encoding="utf-8"))
    figures = [
        *(d["rtt"][k][f] for k in ("room", "bare_echo") for f in ("round_trips_per_s", "p50_ms")),
        *d["server_cpu_us_per_message_one_at_a_time"].values(),
        *d["flood"]["messages_per_s"].values(),
        *d["flood"]["server_cpu_us_per_message"].values(),
        *(v["p50_ms"] for k in ("room", "bare") for v in d["fanout_ms"][k].values()),
    ]
    assert figures and all(math.isfinite(x) and x > 0 for x in figures)
    assert set(d["fanout_ms"]["room"]) == {"1", "10", "100"}
    for series in d["per_round"].values():
        assert len(series) == d["rounds"] == 3
    assert set(d["room_overhead_pct"]["per_round_range"]) == {
        "server_cpu_per_message",
        "server_cpu_per_message_one_at_a_time",
        "messages_per_s",
        "rtt_p50",
    }
    rendered = report.websockets(d)
    assert "room" in rendered and "median of 3 rounds" in rendered
