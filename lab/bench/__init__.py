"""One benchmark harness for every transport (notebook 05 and the README).

``python -m lab.bench --quick`` (the notebook's run, well under 30 s) or
``python -m lab.bench`` (the full run). ``run()`` returns the results
document; ``table()`` formats it; ``schema`` validates and writes it.
"""

from lab.wire.relay import CountingRelay, Counts

from .harness import (
    CLOCK,
    EVENT_TYPE,
    MODES,
    PAYLOAD,
    cost_table,
    cost_vs_rate,
    measure,
    run,
    table,
)
from .stats import latency_summary, percentile

__all__ = [
    "CLOCK",
    "EVENT_TYPE",
    "MODES",
    "PAYLOAD",
    "Counts",
    "CountingRelay",
    "cost_table",
    "cost_vs_rate",
    "latency_summary",
    "measure",
    "percentile",
    "run",
    "table",
]
