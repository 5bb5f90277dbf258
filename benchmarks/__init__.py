"""Benchmark scripts: ``python -m benchmarks.<topic>``; results in ``benchmarks/results/``."""
