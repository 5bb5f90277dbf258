"""``python -m lab.bench [--quick] [--json PATH]``: see ``lab/bench/harness.py``."""

import sys

from .harness import main

sys.exit(main())
