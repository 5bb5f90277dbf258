"""One helper module per notebook, named after it.

``start_here`` (00), ``webhooks`` (01), ``websockets`` (02), ``http_streaming`` (03),
``scaling`` (04). Notebook 05's helpers are the benchmark harness (``benchmarks``)
and ``lab.recommend``.
"""
