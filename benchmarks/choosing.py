"""``python -m benchmarks.choosing [--quick] [--json PATH]``: the six
transports of notebook 05, the same events, measured alike. The method is in
``benchmarks/harness.py``; results go to ``benchmarks/results/choosing.json``
(``choosing_quick.json`` with ``--quick``)."""

import sys

from .harness import main

if __name__ == "__main__":
    sys.exit(main())
