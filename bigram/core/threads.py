"""How many threads a backend's math runs on: chosen by the work, or set with `--threads N`.

A (V,V) kernel at V=65 is a few thousand floating-point operations: it ends
before a second thread has woken, so extra intra-op threads only spin. Worse,
when another process holds a core, every parallel region waits for a peer
thread the OS has descheduled: on this project's shared 2-core machine a
second thread turned a step of 0.06 ms (V=65), 0.8 ms (V=512) or 4 ms
(V=1024) into 40-50 ms, and even at V=2048 doubled it; only on an idle
machine did it gain (up to ~1.5x from V=512). `python benchmarks/threads_sweep.py`
prints the table. So the default is one thread per ELEMENTS_PER_THREAD
table entries, at least one and at most the CPUs this process may use: one
thread up to V=1448, more only for tables whose kernels take milliseconds,
where a late peer costs a fraction of the work instead of a hundred times it.
`--threads N` overrides it.

Pure Python: core never imports torch. The torch backend applies the count.
"""

from __future__ import annotations

import os

ELEMENTS_PER_THREAD = 1 << 20  # 4 MiB of float32 per thread: two threads from V=1449, four from V=2048

_requested: int | None = None


def request(threads: int | None) -> None:
    """`--threads N` for this command; None chooses by the work. The CLI sets it for every command."""
    from bigram.core.errors import require_positive

    require_positive(threads=threads)
    global _requested
    _requested = threads


def requested() -> int | None:
    return _requested


def available() -> int:
    """CPUs this process may use: $OMP_NUM_THREADS when set (as torch reads it), else its CPU affinity."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def for_table(vocab_size: int) -> int:
    """Threads for a (V,V) table's math: `--threads` when given, else one per ELEMENTS_PER_THREAD elements."""
    if _requested is not None:
        return _requested
    return max(1, min(available(), vocab_size * vocab_size // ELEMENTS_PER_THREAD))
