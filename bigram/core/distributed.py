"""Data-parallel bookkeeping that needs no framework: shards, per-rank seeds, the union batch.

The collectives themselves (all-reduce) are torch.distributed's, in
bigram/backends/torch_dist.py; core never imports torch.

Conventions (docs/scale.md):
- `--batch-size B` is the TOTAL batch. With W ranks each draws B / W rows.
- Rank r draws from its own PCG64 stream, rank_seed(seed, r, W). With W = 1
  that is the single-process train stream, so one rank = plain training.
- DDP averages the ranks' gradients, each the mean over (B/W)*T positions:
  that is the mean over all B*T positions of the union batch. So W ranks
  equal one process whose batcher is UnionBatcher of the W rank batchers.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Protocol

import numpy as np

from bigram.core.data import Batcher
from bigram.core.errors import BigramError
from bigram.core.sampling import seed_streams


TORCHRUN_HINT = "launch with `torchrun --nproc_per_node N -m bigram --backend torch train --distributed ...`"


def torchrun_env(environ=None) -> tuple[int, int]:
    """(rank, world size) from torchrun's environment, each variable checked before a process group is
    joined: torch.distributed would fail on a bad one with a traceback, or wait forever for ranks that
    never come (RANK >= WORLD_SIZE)."""
    env = os.environ if environ is None else environ
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if not env.get(k, "").strip()]
    if missing:
        raise BigramError(f"--distributed needs torchrun's environment ({', '.join(missing)} unset); {TORCHRUN_HINT}")
    world = _env_int(env, "WORLD_SIZE", 1, None)
    rank = _env_int(env, "RANK", 0, world - 1)
    if env.get("LOCAL_RANK", "").strip():
        _env_int(env, "LOCAL_RANK", 0, world - 1)  # the GPU a CUDA rank takes
    _env_int(env, "MASTER_PORT", 1, 65535)
    if any(c.isspace() or not c.isprintable() for c in env["MASTER_ADDR"].strip()):
        raise BigramError(f"$MASTER_ADDR={env['MASTER_ADDR']!r} is not a host name or address; {TORCHRUN_HINT}")
    return rank, world


def _env_int(env, name: str, lo: int, hi: int | None) -> int:
    raw = env[name].strip()
    value = int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else None
    if value is None or value < lo or (hi is not None and value > hi):
        allowed = f"from {lo} to {hi}" if hi is not None else f"from {lo} up"
        why = f" (WORLD_SIZE is {hi + 1})" if hi is not None and name in ("RANK", "LOCAL_RANK") else ""
        raise BigramError(f"${name}={env[name]!r} is not a whole number {allowed}{why}; {TORCHRUN_HINT}")
    return value


def shard_bounds(n_tokens: int, rank: int, world: int) -> tuple[int, int]:
    """Token slice [lo, hi) of rank's shard for counting bigrams.

    The N - 1 pairs (t[i], t[i+1]) are split into W contiguous ranges; a rank
    owning pairs [p0, p1) needs tokens [p0, p1 + 1): neighbouring shards share
    one token, so every pair is counted exactly once.
    """
    pairs = max(n_tokens - 1, 0)
    p0, p1 = pairs * rank // world, pairs * (rank + 1) // world
    return p0, (p1 + 1 if p1 > p0 else p0)


def rank_seed(seed: int, rank: int, world: int) -> np.random.SeedSequence:
    """Rank's batch stream: the train stream itself for one rank, else its rank-th child."""
    train = seed_streams(seed)["train"]
    return train if world == 1 else train.spawn(world)[rank]


def per_rank_batch(batch_size: int, world: int) -> int:
    if batch_size % world:
        raise BigramError(
            f"--batch-size {batch_size} is the total batch and must divide evenly over {world} ranks; "
            f"use a multiple of {world}"
        )
    return batch_size // world


def rank_batcher(train: np.ndarray, batch_size: int, block_size: int, seed: int, rank: int, world: int) -> Batcher:
    """The batcher rank `rank` of `world` trains on: B / W rows from its own stream."""
    return Batcher(train, per_rank_batch(batch_size, world), block_size, rank_seed(seed, rank, world))


class UnionBatcher:
    """One process drawing what W ranks draw together: their batches stacked on the batch axis.

    Training with it equals W-rank data-parallel training; the tests use it as the reference.
    """

    def __init__(self, batchers: list[Batcher]):
        self.batchers = batchers

    def get_batch(self) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = zip(*(b.get_batch() for b in self.batchers))
        return np.concatenate(xs), np.concatenate(ys)  # (B,T), (B,T)

    def get_state(self) -> dict:
        return self.batchers[0].get_state()


# -- the collectives core's training loop needs ---------------------------------------------------------

DEFAULT_TIMEOUT_S = 300.0  # a rank waits this long for the others (rendezvous, every collective)
TIMEOUT_ENV = "BIGRAM_DIST_TIMEOUT"


def dist_timeout(environ=None) -> float:
    """Seconds any rank waits for the others: $BIGRAM_DIST_TIMEOUT, else 300 (torch's own default is 30 min)."""
    env = os.environ if environ is None else environ
    raw = env.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e6:  # NaN fails too
        raise BigramError(f"${TIMEOUT_ENV}={raw!r} is not a number of seconds from 0 to 1e6; "
                          f"e.g. {TIMEOUT_ENV}={DEFAULT_TIMEOUT_S:g}")
    return value


class Group(Protocol):
    """The ranks of one job, as core's training loop sees them (bigram/backends/torch_dist.TorchGroup
    is the torch.distributed one). Every rank calls each method at the same point of the run."""

    rank: int
    world: int
    distributed: bool  # a torchrun job (even of one rank), not a plain process

    def agree(self, flag: int) -> int:
        """The largest `flag` of any rank, on every rank (e.g. a signal number, 0 for none)."""

    def gather(self, obj: Any) -> list | None:
        """Every rank's `obj`, in rank order, on rank 0 (None on the others)."""

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank."""


class Solo:
    """One plain process: every collective is the identity."""

    rank, world, distributed = 0, 1, False

    def agree(self, flag: int) -> int:
        return flag

    def gather(self, obj: Any) -> list:
        return [obj]

    def broadcast(self, obj: Any) -> Any:
        return obj


def from_rank0(group: Group, fn: Callable[[], Any]) -> Any:
    """fn() run on rank 0 alone, its result (or its error) handed to every rank.

    Deciding once (which checkpoint to resume, whether there is one) means no
    two ranks can decide differently, and only rank 0 needs to see --out.
    """
    if group.world == 1 and group.rank == 0:
        return fn()
    if group.rank == 0:
        try:
            result = ("ok", fn())
        except BigramError as e:
            group.broadcast(("error", str(e), e.exit_code))
            raise
        except BaseException as e:
            group.broadcast(("error", f"rank 0 failed: {type(e).__name__}: {e}", 1))
            raise
        return group.broadcast(result)[1]
    kind, *rest = group.broadcast(None)
    if kind == "error":
        raise BigramError(rest[0], exit_code=rest[1])
    return rest[0]
