"""Memory a command will need, estimated from its sizes before anything is allocated.

A size no machine can hold (`explain --batch-size 99999999`: 800 million
positions of V logits each) would otherwise allocate until the OS swaps or
kills the process, minutes later. Each command estimates its largest
allocations from its options (bytes per position, per sampled token, per
evaluation record) and, where the estimate is more than the memory available
now, refuses in one line naming the option and the largest value that fits.

The estimates are upper bounds of what the NumPy reference allocates at its
peak (tests/test_memory_check.py measures them with tracemalloc), so a value
the check lets through does not run out of memory for want of the estimate.
Where the OS does not say how much memory is free, nothing is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from bigram.core.errors import BigramError

# Bytes per (B,T) position of a batch and per logit of it (V per position), per
# sampled token, per record kept: measured peaks of the NumPy reference, rounded up.
TEXTBOOK_PER_LOGIT = 24  # a forward's logits, the softmax and dlogits (float32; float64 scratch is shared)
EXPLAIN_PER_LOGIT = 48  # also the probabilities table looked up per position, the lookup check, one more step
PER_POSITION = 96  # index arrays (int64 inputs, targets, pair codes) and, for explain, a Python float per position
PER_SAMPLED_TOKEN = 80  # its coin (float64), its id (int64), the decoded text and its UTF-32 scratch
PER_EVAL_RECORD = 1024  # one evaluation's dict in the run's metrics (steps / --eval-interval of them)
CHUNK_SCRATCH = 24 << 20  # train draws batches many steps at a time (bigram/core/fast.py): 2**20 ids of scratch
PER_EVAL_BATCH = 32  # the lecture's estimate keeps one loss (a Python float in a list) per batch


def available_bytes() -> int | None:
    """Memory this process can still allocate without swapping: the OS's MemAvailable, capped by a
    cgroup (container) limit and by `ulimit -v`; None where the OS does not tell."""
    free = _meminfo_available()
    if free is None:
        try:  # other POSIX systems: free pages where known
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    limits = [n for n in (free, _cgroup_room(), _rlimit_room()) if n is not None]
    return min(limits)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room(proc: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """cgroup v2: memory.max minus what this process's group uses (None: no limit).

    memory.current counts the page cache too (a corpus just read or prepared, the memmapped
    splits): the kernel drops its inactive part before it fails an allocation, so, as
    MemAvailable does, that part is room, not use."""
    try:
        rel = proc.read_text().strip().split("::", 1)[1]
        group = root / rel.lstrip("/")
        limit = (group / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((group / "memory.current").read_text()) - _reclaimable(group / "memory.stat")
        return max(0, int(limit) - max(used, 0))
    except (OSError, ValueError, IndexError):
        return None


def _reclaimable(stat: Path) -> int:
    """memory.stat's inactive_file: page cache the kernel reclaims before refusing memory (0 when unknown)."""
    try:
        for line in stat.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "inactive_file":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _rlimit_room() -> int | None:
    """`ulimit -v`: the address space left to this process (None: unlimited, or unknown)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return None


def human(n: float) -> str:
    """Bytes as people read them: 1,000 bytes, 21.2 GiB (PiB is the largest unit)."""
    if n < 1024:
        return f"{n:,.0f} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            break
    return f"{n:,.1f} {unit}"


def check_fits(option: str, value: int, per_unit: float, fixed: float = 0.0, *, what: str = "",
               available: int | None = None) -> None:
    """Refuse `option value` when fixed + value * per_unit bytes exceed the memory available now.

    The message names the option and the largest value that fits beside the rest of the command.
    """
    need = fixed + value * per_unit
    free = available_bytes() if available is None else available
    if free is None or need <= free:
        return
    bound = int((free - fixed) // per_unit) if per_unit > 0 else 0
    use = f"use at most {option} {bound:,}".replace(",", "") if bound >= 1 else "lower the other sizes first"
    raise BigramError(f"{option} {value} needs about {human(need)} of memory{what}, more than the "
                      f"{human(free)} available; {use}")


def check_batch(batch_size: int, block_size: int, vocab_size: int, *, per_logit: int = TEXTBOOK_PER_LOGIT,
                fixed: float = 0.0, available: int | None = None) -> None:
    """A (B,T) batch with V logits per position (per_logit 0: the counts path, ids only); the message
    names the larger of --batch-size and --block-size and bounds it at the other's value."""
    per_position = PER_POSITION + per_logit * vocab_size
    logits = f" with {vocab_size} logits each" if per_logit else ""
    what = f" (a batch of {batch_size} x {block_size} positions{logits})"
    if block_size > batch_size:
        check_fits("--block-size", block_size, batch_size * per_position, fixed, what=what, available=available)
    else:
        check_fits("--batch-size", batch_size, block_size * per_position, fixed, what=what, available=available)
