"""Learning-rate schedules: the lr of every step, computed in core.

Core hands each backend the same Python float before each step (Model.set_lr),
so two backends that agree on one step agree on a scheduled run too.

"cosine" is nanoGPT's decay without warmup: from lr at step 0 down to min_lr at
step decay_steps, then min_lr. A bigram needs no warmup (there are no layers to
keep from blowing up), and with AdamW it needs decay: each step moves each
weight by about lr whatever the gradient's size, so at a constant lr the noise
of batch-32 gradients keeps the loss above the optimum. A large lr early gets
near the optimum fast, a small one late settles into it (README: "Defaults").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bigram.core.defaults import LR_SCHEDULES


@dataclass(frozen=True)
class LRSchedule:
    kind: str  # one of LR_SCHEDULES
    lr: float  # the peak (cosine) or only (constant) rate
    min_lr: float  # where cosine ends
    decay_steps: int  # the step at which cosine reaches min_lr

    def __post_init__(self):
        if self.kind not in LR_SCHEDULES:
            raise ValueError(f"unknown lr schedule {self.kind!r}")

    @property
    def constant(self) -> bool:
        return self.kind == "constant" or self.lr == self.min_lr

    def __call__(self, step: int) -> float:
        """The lr of the update taken at 0-based `step` (the one that makes step + 1)."""
        if self.kind == "constant":
            return self.lr
        if step >= self.decay_steps:
            return self.min_lr
        coeff = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))  # 1 -> 0
        return self.min_lr + coeff * (self.lr - self.min_lr)
