"""Percentiles the way the harness reports them.

``percentile(values, p)`` is the linear interpolation between closest ranks
(NumPy's default, "method 7" of Hyndman and Fan): for ``n`` sorted values
the rank is ``(n - 1) * p / 100``, and a rank between two values takes the
weighted mean of both. p0 is the minimum, p100 the maximum, p50 the median.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0 <= p <= 100) of ``values`` (not empty)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100 or math.isnan(p):
        raise ValueError(f"p must be between 0 and 100, not {p}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max in milliseconds (None when nothing arrived)."""
    if not latencies_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    return {
        "p50": percentile(latencies_ms, 50),
        "p95": percentile(latencies_ms, 95),
        "p99": percentile(latencies_ms, 99),
        "max": max(latencies_ms),
    }
