"""The counting TCP relay (``relay.py``): bytes on the wire, counted at the socket.

The benchmarks themselves (harness, drivers, stats, schema) live in
``benchmarks/``: ``python -m benchmarks.choosing``.
"""

from .relay import CountingRelay, Counts

__all__ = ["CountingRelay", "Counts"]
