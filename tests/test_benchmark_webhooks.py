"""benchmarks/webhooks.py runs: a tiny run of each receiver mode delivers and
processes every event once (the benchmark waits on processing, so a receiver
that acknowledges but never works would make it time out)."""

from __future__ import annotations

import pytest

from benchmarks import webhooks as bench


@pytest.mark.parametrize(
    "mode", [bench.InProcessReceivers, bench.BareTornadoReceivers], ids=["in-process", "bare"]
)
def test_a_small_run_processes_every_delivery_once(tmp_path, mode):
    row = bench.run(2, 20, 10, 200.0, str(tmp_path), mode)
    assert row["subscribers"] == 2 and row["deliveries_per_s"] > 0
    assert row["processed_twice"] == 0
    assert row["latency_p50_ms"] > 0
