"""The server's own access-log lines, captured while a block runs.

Notebooks 02 in depth and 03 in depth use it to show what a token in a URL
costs: the server logs the whole request line, query string included.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def access_log() -> Iterator[list[str]]:
    """The lines ``tornado.access`` logs while the block runs (and only there)."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    capture, log = Capture(), logging.getLogger("tornado.access")
    old = log.level, log.propagate
    log.addHandler(capture)
    log.setLevel(logging.INFO)
    log.propagate = False  # only our capture, not the kernel's log output
    try:
        yield lines
    finally:
        log.removeHandler(capture)
        log.setLevel(old[0])
        log.propagate = old[1]
