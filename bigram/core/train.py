"""The training loop: framework-agnostic, driving any backend through the Model protocol."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bigram.core.backend import AdamWConfig, Model
from bigram.core.checkpoint import save_checkpoint
from bigram.core.data import Batcher, Corpus, bigram_counts
from bigram.core.errors import BigramError
from bigram.core.defaults import DEFAULT_METHOD, METHODS
from bigram.core.fast import make_step
from bigram.core.metrics import METRICS_FILE, MetricsLog
from bigram.core.sampling import seed_streams

# Defaults live in bigram/core/defaults.py (importable without NumPy, for `bigram --help`).
from bigram.core.defaults import (  # noqa: E402,F401
    DEFAULT_BATCH_SIZE, DEFAULT_BLOCK_SIZE, DEFAULT_EVAL_INTERVAL, DEFAULT_LR, DEFAULT_SEED, DEFAULT_STEPS,
)


@dataclass
class TrainConfig:
    steps: int = DEFAULT_STEPS
    batch_size: int = DEFAULT_BATCH_SIZE
    block_size: int = DEFAULT_BLOCK_SIZE
    seed: int = DEFAULT_SEED
    eval_interval: int = DEFAULT_EVAL_INTERVAL
    eval_batches: int | None = None  # None: exact loss over the whole split
    optim: AdamWConfig = field(default_factory=AdamWConfig)
    method: str = DEFAULT_METHOD  # "counts" (fast, exact) or "textbook" (bigram/core/fast.py)

    def validate(self) -> None:
        for name in ("steps", "batch_size", "block_size", "eval_interval"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                flag = "--" + name.replace("_", "-")
                raise BigramError(f"{flag} must be a positive integer, got {value}; pass a value >= 1")
        lr = self.optim.lr
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise BigramError(f"--lr must be a positive finite number, got {lr}; try --lr {DEFAULT_LR}")
        if self.eval_batches is not None and self.eval_batches <= 0:
            raise BigramError(f"--eval-batches must be a positive integer, got {self.eval_batches}")
        if self.method not in METHODS:
            raise BigramError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")

    def to_json(self) -> dict:
        d = asdict(self)
        d["optim"] = self.optim.to_json()
        return d


@dataclass
class TrainResult:
    step: int
    train_loss: float
    val_loss: float
    wall_s: float
    train_s: float
    tokens_per_s: float
    checkpoint: str | None


class Evaluator:
    """Loss over each split: exact from bigram counts, or the lecture's batch estimate."""

    def __init__(self, corpus: Corpus, cfg: TrainConfig):
        V = corpus.tokenizer.vocab_size
        self.cfg = cfg
        self.counts = {s: bigram_counts(corpus.split(s), V) for s in ("train", "val")}
        if cfg.eval_batches is not None:
            seed = seed_streams(cfg.seed)["val"]
            self.batchers = {
                s: Batcher(corpus.split(s), cfg.batch_size, cfg.block_size, seed) for s in ("train", "val")
            }

    def __call__(self, model: Model) -> dict[str, float]:
        if self.cfg.eval_batches is None:
            return {s: model.eval_counts(c) for s, c in self.counts.items()}
        out = {}
        for s, b in self.batchers.items():  # the lecture's estimate_loss()
            losses = [model.forward(*b.get_batch())[1] for _ in range(self.cfg.eval_batches)]
            out[s] = float(np.mean(losses))
        return out


def make_train_batcher(corpus: Corpus, cfg: TrainConfig) -> Batcher:
    return Batcher(corpus.train, cfg.batch_size, cfg.block_size, seed_streams(cfg.seed)["train"])


def train(
    model: Model,
    corpus: Corpus,
    cfg: TrainConfig,
    *,
    backend: str,
    out_dir: str | Path | None = None,
    batcher: Batcher | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
    run_config: dict | None = None,
) -> TrainResult:
    """Train `model` for cfg.steps steps past its current step; evaluate, log, checkpoint.

    `batcher` carries the data RNG (pass the restored one to resume exactly).
    """
    cfg.validate()
    corpus.check_block_size(cfg.block_size)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    batcher = batcher or make_train_batcher(corpus, cfg)
    evaluate = Evaluator(corpus, cfg)
    out = Path(out_dir) if out_dir is not None else None
    metrics = MetricsLog(out / METRICS_FILE if out is not None else None)
    start = int(model.get_state()["adamw.step"])
    end = start + cfg.steps
    t0 = time.perf_counter()
    train_s = 0.0
    loss = float("nan")
    take_step = make_step(model, batcher, cfg.method)  # draws batches many steps at a time

    def do_eval(step: int) -> dict[str, float]:
        losses = evaluate(model)
        log(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        metrics.append(
            {"step": step, "train_loss": losses["train"], "val_loss": losses["val"], "batch_loss": loss,
             "wall_s": round(time.perf_counter() - t0, 4)}
        )
        return losses

    with _progress(progress, cfg.steps) as bar:
        for step in range(start, end):
            if (step - start) % cfg.eval_interval == 0:
                do_eval(step)
            ts = time.perf_counter()
            loss = take_step()  # next batch, forward, backward, AdamW; batcher stays in lockstep
            train_s += time.perf_counter() - ts
            if not math.isfinite(loss):
                raise BigramError(
                    f"loss became {loss} at step {step} with --lr {cfg.optim.lr}; lower --lr "
                    f"(the default is {DEFAULT_LR}); no checkpoint was written for this run"
                )
            bar.advance(step - start + 1, loss)
    losses = do_eval(end)
    ckpt = None
    if out is not None:
        config = dict(run_config or {})
        config.update(
            backend=backend, device=model.device, dtype=model.dtype, train=cfg.to_json(),
            corpus={"sha256": corpus.sha256, "source": corpus.source},
            batcher_state=batcher.get_state(),
            metrics={"train_loss": losses["train"], "val_loss": losses["val"]},
        )
        ckpt = str(save_checkpoint(out, model.get_state(), corpus.tokenizer, config))
        log(f"saved checkpoint to {ckpt}")
    return TrainResult(
        step=end,
        train_loss=losses["train"],
        val_loss=losses["val"],
        wall_s=time.perf_counter() - t0,
        train_s=train_s,
        tokens_per_s=cfg.steps * cfg.batch_size * cfg.block_size / max(train_s, 1e-12),
        checkpoint=ckpt,
    )


class _NoBar:
    def advance(self, done: int, loss: float) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _RichBar(_NoBar):
    """A rich progress bar on stderr showing the loss, refreshed at most ~10x/s."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )
        self.task = self.progress.add_task("train", total=total, loss="-")
        self.last = 0.0

    def advance(self, done: int, loss: float) -> None:
        now = time.perf_counter()
        if now - self.last > 0.1:
            self.last = now
            self.progress.update(self.task, completed=done, loss=f"{loss:.4f}")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)


def _progress(enabled: bool, total: int):
    return _RichBar(total) if enabled and sys.stderr.isatty() else _NoBar()
