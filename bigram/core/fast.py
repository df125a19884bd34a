"""Fast training paths: batches drawn many steps at a time, and bigram counts per step.

A bigram's loss on a batch depends on the batch only through the counts c[i,j]
of its (x[b,t], y[b,t]) pairs, so the "counts" method hands each backend a
(V,V) count table instead of (B,T) ids: a step then costs O(V^2 + B*T), not
O(B*T*V). Counting is data statistics, not model math, so it lives in core.

Draws stay in lockstep with the Batcher: a chunk of steps is drawn from a copy
of its generator, and the Batcher's own generator moves B draws per step taken,
so `batcher.get_state()` is always the state after exactly the steps consumed
(checkpoints and resume see no difference from one step at a time).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from bigram.core.data import Batcher
from bigram.core.defaults import DEFAULT_METHOD, METHODS
from bigram.core.schedule import LRSchedule

_TOKENS_PER_CHUNK = 1 << 20  # bounds the (S,B,T) scratch of one chunk
_COUNTS_PER_CHUNK = 1 << 18  # bounds the (S,V,V) counts of one chunk: stays in cache
_MAX_CHUNK = 256


class ChunkedBatches:
    """Window offsets for `chunk` steps at a time, in lockstep with `batcher`'s generator."""

    def __init__(self, batcher: Batcher, chunk: int):
        self.batcher = batcher
        self.chunk = max(1, int(chunk))
        self.bits = batcher.rng.bit_generator
        self.i = 0

    def next_chunk(self) -> np.ndarray:
        """(S,B) offsets of the next S steps; the Batcher itself has not moved yet."""
        state = self.bits.state
        offsets = self.batcher.offsets(self.chunk)  # (S,B) same stream as S single steps
        self.bits.state = state  # rewind: steps move it as they are taken
        return offsets

    def take(self) -> None:
        """Move the Batcher's generator past one step: B uniforms, one 64-bit draw each."""
        self.bits.random_raw(self.batcher.batch_size)


class CountsStream(ChunkedBatches):
    """Per step, the (V,V) bigram counts of the batch Batcher.get_batch would have drawn."""

    def __init__(self, batcher: Batcher, vocab_size: int, dtype: str = "float32"):
        B, T, V = batcher.batch_size, batcher.block_size, vocab_size
        chunk = min(_MAX_CHUNK, _TOKENS_PER_CHUNK // (B * T), _COUNTS_PER_CHUNK // (V * V))
        super().__init__(batcher, chunk)
        exact = B * T < 1 << 24  # float32 holds every count a cell can reach
        self.V, self.dtype = V, np.dtype(dtype if exact else "float64")
        self.N = float(B * T)  # every step's total count
        self.items: list = []

    def _refill(self) -> None:
        offsets = self.next_chunk()  # (S,B)
        S = len(offsets)
        VV = self.V * self.V
        # Gather the chunk's windows through the Batcher (pread on a memory-mapped
        # split): never a per-position code array for the whole corpus.
        x, y = self.batcher.windows(offsets)  # (S,B,T) each
        codes = x.astype(np.int64)
        codes *= self.V
        codes += y  # (S,B,T) pair codes x*V + y
        codes += (np.arange(S) * VV)[:, None, None]  # a separate (V,V) block per step
        flat = np.zeros(S * VV, dtype=self.dtype)  # (S*V*V,)
        # Scatter-add straight into the model's dtype (exact below 2^24 per cell):
        # with B*T << V*V this beats a dense bincount plus a dtype conversion.
        np.add.at(flat, codes.ravel(), self.dtype.type(1))
        counts = flat.reshape(S, self.V, self.V)  # (S,V,V)
        rows = flat.reshape(S * self.V, self.V) @ np.ones(self.V, dtype=self.dtype)  # (S*V,) n_i
        rows = rows.reshape(S, self.V)  # (S,V) positions that read row i, per step
        self.items = [(c, r, self.N) for c, r in zip(counts, rows)]  # views made once per chunk
        self.i = 0

    def __call__(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The next step's counts (V,V) in the model's dtype, their row sums (V,) and total N."""
        if self.i == len(self.items):
            self._refill()
        self.bits.random_raw(self.batcher.batch_size)  # take(), inlined: this runs every step
        self.i += 1
        return self.items[self.i - 1]


class WindowStream(ChunkedBatches):
    """Per step, the (B,T) x, y of Batcher.get_batch, gathered many steps at a time."""

    def __init__(self, batcher: Batcher):
        B, T = batcher.batch_size, batcher.block_size
        super().__init__(batcher, min(_MAX_CHUNK, _TOKENS_PER_CHUNK // (B * (T + 1))))
        self.x = self.y = np.empty((0, B, T), dtype=batcher.data.dtype)

    def __call__(self) -> tuple[np.ndarray, np.ndarray]:
        if self.i == len(self.x):
            self.x, self.y = self.batcher.windows(self.next_chunk())  # (S,B,T) each
            self.i = 0
        self.take()
        self.i += 1
        return self.x[self.i - 1], self.y[self.i - 1]


def make_step(model, batcher, method: str = DEFAULT_METHOD, schedule: LRSchedule | None = None,
              start: int = 0) -> Callable[[], float]:
    """A function that takes one training step on the next batch and returns its loss.

    A backend without train_step_counts (a plugin written before it existed,
    or a data-parallel wrapper whose gradients must go through autograd)
    trains the textbook way: same losses, only slower. A batcher that is not
    core's (e.g. one gathering batches on a GPU) is asked for one batch a step.
    `schedule` (bigram/core/schedule.py) sets the lr of each step, the first
    being step `start`: a constant one once, here; None leaves the model's lr alone.
    """
    if method not in METHODS:
        from bigram.core.errors import BigramError

        raise BigramError(f"unknown training method {method!r}; use one of {', '.join(METHODS)}")
    prepare = getattr(model, "prepare_training", None)  # optional: what only training needs, built up front
    if prepare is not None:
        prepare()
    if not isinstance(batcher, Batcher):
        step = lambda: model.train_step(*batcher.get_batch())  # noqa: E731
    elif method == "counts" and getattr(model, "train_step_counts", None) is not None:
        counts = CountsStream(batcher, model.vocab_size, model.dtype)
        step = lambda: model.train_step_counts(*counts())  # noqa: E731
    else:
        windows = WindowStream(batcher)
        step = lambda: model.train_step(*windows())  # noqa: E731
    if schedule is None:
        return step
    if schedule.constant:  # set once (a model that ran a schedule before must not keep its last lr)
        if getattr(model, "set_lr", None) is not None:
            model.set_lr(schedule.lr)
        return step
    return _scheduled(model, step, schedule, start)


def _scheduled(model, step: Callable[[], float], lr_at: LRSchedule, start: int) -> Callable[[], float]:
    """`step`, with the model's lr set from the schedule before each update."""
    set_lr = getattr(model, "set_lr", None)
    if set_lr is None:
        from bigram.core.errors import BigramError

        raise BigramError("this backend's model has no set_lr, so its learning rate cannot follow a schedule; "
                          "train it with --lr-schedule constant (a checkpoint saved with a schedule resumes only "
                          "on a backend with set_lr)")
    at = [start]

    def scheduled() -> float:
        set_lr(lr_at(at[0]))
        at[0] += 1
        return step()

    return scheduled
