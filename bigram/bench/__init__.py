"""Benchmarks: bigram's fast paths side by side with the lecture's code.

`bigram bench` and benchmarks/run.py call run_bench(). Importing this package
does not import torch; the lecture baseline (lecture.py) is imported when a
benchmark runs.
"""

from bigram.bench.engine import BenchConfig, run_bench, to_markdown

__all__ = ["BenchConfig", "run_bench", "to_markdown"]
