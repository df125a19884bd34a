"""The training loop: framework-agnostic, driving any backend through the Model protocol."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from bigram.core.backend import STATE_KEYS, AdamWConfig, Model
from bigram.core.checkpoint import CheckpointDir, replacing_warning, resume_arg, save_checkpoint
from bigram.core.data import Batcher, Corpus, bigram_counts
from bigram.core.distributed import Group, Solo
from bigram.core.errors import BigramError, Interrupted, require_positive
from bigram.core.defaults import DEFAULT_LR_SCHEDULE, DEFAULT_METHOD, DEFAULT_MIN_LR_DIVISOR, LR_SCHEDULES, METHODS
from bigram.core.fast import make_step
from bigram.core.memory import (
    CHUNK_SCRATCH, PER_EVAL_BATCH, PER_EVAL_RECORD, PER_POSITION, TEXTBOOK_PER_LOGIT, check_batch, check_fits,
)
from bigram.core.metrics import MetricsLog
from bigram.core.optimum import optimal_loss
from bigram.core.sampling import seed_streams
from bigram.core.schedule import LRSchedule

# Defaults live in bigram/core/defaults.py (importable without NumPy, for `bigram --help`).
from bigram.core.defaults import (  # noqa: E402,F401
    DEFAULT_BATCH_SIZE, DEFAULT_BLOCK_SIZE, DEFAULT_EVAL_INTERVAL, DEFAULT_LR, DEFAULT_SEED, DEFAULT_STEPS,
)
MAX_SIZE = 2**31 - 1  # batch, block, eval batches, sampled tokens: beyond any machine's memory


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
    lr_schedule: str = DEFAULT_LR_SCHEDULE  # "cosine" or "constant" (bigram/core/schedule.py)
    min_lr: float | None = None  # cosine's final lr; None: lr / DEFAULT_MIN_LR_DIVISOR
    decay_steps: int | None = None  # cosine reaches min_lr here; None: the run's last step

    def validate(self) -> None:
        require_positive(steps=self.steps, batch_size=self.batch_size, block_size=self.block_size,
                         eval_interval=self.eval_interval, eval_batches=self.eval_batches,
                         decay_steps=self.decay_steps)
        lr = self.optim.lr
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise BigramError(f"--lr must be a positive finite number, got {lr}; try --lr {DEFAULT_LR}")
        wd = self.optim.weight_decay
        if not (isinstance(wd, (int, float)) and math.isfinite(wd) and wd >= 0):
            raise BigramError(f"--weight-decay must be a finite number >= 0, got {wd}; try --weight-decay "
                              f"{AdamWConfig.weight_decay} (0: no decay)")
        self.check_adam()
        if self.method not in METHODS:
            raise BigramError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.check_schedule()
        self.check_ranges()

    def check_adam(self) -> None:
        """AdamW's betas in [0, 1) and eps > 0 (torch's own bounds); only a tampered config.json can break them."""
        o = self.optim
        ok = all(isinstance(b, (int, float)) and 0 <= b < 1 for b in (o.beta1, o.beta2))
        if not (ok and isinstance(o.eps, (int, float)) and math.isfinite(o.eps) and o.eps > 0):
            raise BigramError(f"AdamW needs betas in [0, 1) and eps > 0, got beta1 {o.beta1}, beta2 {o.beta2}, "
                              f"eps {o.eps}")

    def check_schedule(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise BigramError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}; "
                              f"e.g. --lr-schedule {DEFAULT_LR_SCHEDULE}")
        if self.lr_schedule == "constant" and (self.min_lr is not None or self.decay_steps is not None):
            flag = "--min-lr" if self.min_lr is not None else "--decay-steps"
            raise BigramError(f"{flag} shapes the cosine schedule; drop it, or use --lr-schedule cosine")
        m = self.min_lr
        if m is not None and not (isinstance(m, (int, float)) and math.isfinite(m) and 0 <= m <= self.optim.lr):
            raise BigramError(f"--min-lr must be a number from 0 to --lr ({self.optim.lr}), got {m}; "
                              f"e.g. --min-lr {self.optim.lr / DEFAULT_MIN_LR_DIVISOR:g}")

    def schedule(self, end: int) -> LRSchedule:
        """The lr schedule of a run whose last step is `end` (unless decay_steps says otherwise)."""
        lr = self.optim.lr
        min_lr = lr / DEFAULT_MIN_LR_DIVISOR if self.min_lr is None else self.min_lr
        return LRSchedule(self.lr_schedule, lr, min_lr, end if self.decay_steps is None else self.decay_steps)

    def resolved(self, end: int) -> "TrainConfig":
        """This config with the schedule's defaults filled in, as a checkpoint keeps it (so a resume
        decays over the horizon of the run it continues, not over its own steps)."""
        if self.lr_schedule == "constant":
            return self
        s = self.schedule(end)
        return replace(self, min_lr=s.min_lr, decay_steps=s.decay_steps)

    def check_ranges(self) -> None:
        """Values no run can use (NumPy would fail with a ValueError deep inside) are bad input."""
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            raise BigramError(f"--seed must be an integer from 0 to 2**64-1, got {self.seed}; e.g. --seed {DEFAULT_SEED}")
        for name in ("batch_size", "block_size", "eval_batches"):
            value = getattr(self, name)
            if value is not None and value > MAX_SIZE:
                flag = "--" + name.replace("_", "-")
                raise BigramError(f"{flag} {value} is too large; use at most {MAX_SIZE}")

    def check_memory(self, vocab_size: int) -> None:
        """Sizes this machine cannot hold are refused before the first step (bigram.core.memory);
        the option blamed is the one whose share of the estimate is the largest."""
        textbook = self.method == "textbook" or self.eval_batches is not None  # a (B,T,V) forward
        per_logit = TEXTBOOK_PER_LOGIT if textbook else 0
        batch = self.batch_size * self.block_size * (PER_POSITION + per_logit * vocab_size)
        records = (self.steps // self.eval_interval + 2) * PER_EVAL_RECORD  # metrics kept for the whole run
        estimates = (self.eval_batches or 0) * PER_EVAL_BATCH
        every = f" (a metrics record every --eval-interval {self.eval_interval} steps)"
        checks = [
            (batch, lambda: check_batch(self.batch_size, self.block_size, vocab_size, per_logit=per_logit,
                                        fixed=CHUNK_SCRATCH + records + estimates)),
            (records, lambda: check_fits("--steps", self.steps, PER_EVAL_RECORD / self.eval_interval,
                                         CHUNK_SCRATCH + batch + estimates, what=every)),
            (estimates, lambda: check_fits("--eval-batches", self.eval_batches or 0, PER_EVAL_BATCH,
                                           CHUNK_SCRATCH + batch + records)),
        ]
        for _, check in sorted(checks, key=lambda c: -c[0]):
            check()

    def to_json(self) -> dict:
        d = asdict(self)
        d["optim"] = self.optim.to_json()
        return d


@dataclass
class TrainResult:
    step: int
    train_loss: float
    val_loss: float | None  # None: the corpus has no val split
    wall_s: float
    train_s: float
    tokens_per_s: float
    checkpoint: str | None
    eval_batches: int | None = None  # None: the losses are exact; N: estimates over N random batches
    history: list[dict] = field(default_factory=list)  # this run's evaluations (metrics.jsonl's records)
    config: dict = field(default_factory=dict)  # what config.json holds (or would, without an out_dir)

    @property
    def exact(self) -> bool:
        return self.eval_batches is None


class Evaluator:
    """Loss over each split: exact from bigram counts, or the lecture's batch estimate.

    A corpus without a val split (val_fraction 0) has no val loss: None, never a number.
    """

    def __init__(self, corpus: Corpus, cfg: TrainConfig):
        V = corpus.tokenizer.vocab_size
        self.cfg = cfg
        self.counts = {s: bigram_counts(corpus.split(s), V) for s in corpus.splits}
        if cfg.eval_batches is not None:
            # one stream per split: with a shared seed both would draw the same uniforms, and the
            # train and val estimates would read windows at the same relative positions
            seeds = dict(zip(("train", "val"), seed_streams(cfg.seed)["val"].spawn(2)))
            self.batchers = {
                s: Batcher(corpus.split(s), cfg.batch_size, cfg.block_size, seeds[s]) for s in corpus.splits
            }

    @property
    def label(self) -> str:
        """What the losses are: 'exact', or 'estimates over N batches'."""
        n = self.cfg.eval_batches
        return "exact" if n is None else f"estimates over {n} batch{'es' if n != 1 else ''}"

    def __call__(self, model: Model) -> dict[str, float | None]:
        out: dict[str, float | None] = {"train": None, "val": None}
        if self.cfg.eval_batches is None:
            out.update({s: model.eval_counts(c) for s, c in self.counts.items()})
            return out
        for s, b in self.batchers.items():  # the lecture's estimate_loss()
            losses = [model.forward(*b.get_batch())[1] for _ in range(self.cfg.eval_batches)]
            out[s] = float(np.mean(losses))
        return out

    def line(self, step: int, losses: dict[str, float | None]) -> str:
        """'step 500: train loss 2.4831, val loss 2.5120 (exact)': what the log shows of one evaluation."""
        val = "no val split" if losses["val"] is None else f"val loss {losses['val']:.4f}"
        return f"step {step}: train loss {losses['train']:.4f}, {val} ({self.label})"

    def get_state(self) -> dict | None:
        """The val/train estimate batchers' RNG states (None for exact evaluation)."""
        if self.cfg.eval_batches is None:
            return None
        return {s: b.get_state() for s, b in self.batchers.items()}

    def set_state(self, state: dict | None) -> None:
        if self.cfg.eval_batches is not None and isinstance(state, dict):
            for s, b in self.batchers.items():
                try:
                    b.set_state(state[s])
                except (KeyError, TypeError, ValueError, OverflowError):
                    raise BigramError(f"the saved {s} estimate batcher state is invalid; resume without "
                                      "--eval-batches or start a new run") from None


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
    save_interval: int | None = None,
    resumed: dict | None = None,
    is_main: bool = True,
    sample_interval: int | None = None,
    sample: Callable[[], str] | None = None,
    group: Group | None = None,
    resume_args: list[str] | None = None,
) -> TrainResult:
    """Train `model` for cfg.steps steps past its current step; evaluate, log, checkpoint.

    `batcher` carries the data RNG (pass the restored one to resume exactly);
    `resumed` is the checkpoint's config when resuming (see bigram.core.resume).
    `out_dir` is opened (and locked) before the first step: a directory bigram
    must not write into is refused then, never after training.
    Evaluations fall on multiples of eval_interval counted from step 0, so a
    resumed run evaluates where the uninterrupted one would have. SIGINT and
    SIGTERM save a checkpoint at the last completed step and raise Interrupted.
    `is_main` False: a non-zero rank of a data-parallel job, same steps, silent, saves nothing.
    `group` (core.distributed.Group): the job's ranks. Before each step they agree on whether
    any got a signal, so all stop after the same step; each save gathers every rank's batch
    stream to rank 0, which alone writes. `resume_args` (e.g. ["--data", PATH]) go into the
    resume command an interrupt prints, so that it works as printed.
    `sample_interval` N: every N steps (from step 0), log `sample()`, a short seeded sample of the
    model as it is then; it reads the table only, so the run's numbers are the same without it.
    """
    group = group or Solo()
    if not is_main or group.rank != 0:
        log, out_dir, progress, is_main = (lambda msg: None), None, False, False
    cfg.validate()
    corpus.check_block_size(cfg.block_size)
    cfg.check_memory(corpus.vocab_size)
    require_positive(save_interval=save_interval, sample_interval=sample_interval)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    batcher = batcher or make_train_batcher(corpus, cfg)
    evaluate = Evaluator(corpus, cfg)
    out = Path(out_dir) if out_dir is not None else None
    start = int(model.get_state()["adamw.step"])
    end = start + cfg.steps
    cfg = cfg.resolved(end)
    schedule = cfg.schedule(end)
    if resumed is not None:
        evaluate.set_state(resumed.get("eval_batcher_state"))
    evaluated = {start} if resumed is not None and resumed.get("evaluated") else set()
    saved = {"step": start if resumed is not None and resumed.get("same_dir") else None}  # last good one on disk
    t0 = time.perf_counter()
    train_s = 0.0
    loss = float("nan")
    take_step = make_step(model, batcher, cfg.method, schedule, start)  # draws batches many steps at a time

    def do_eval(step: int) -> dict[str, float | None]:
        losses = evaluate(model)
        evaluated.add(step)
        log(evaluate.line(step, losses))
        metrics.append(
            {"step": step, "train_loss": losses["train"], "val_loss": losses["val"], "batch_loss": loss,
             "eval_batches": cfg.eval_batches, "wall_s": round(time.perf_counter() - t0, 4)}
        )
        return losses

    def show_sample(step: int) -> None:
        if sample_interval and sample is not None and step % sample_interval == 0:
            log(f"step {step} sample: {sample()}")

    corpus_record = corpus.record(evaluate.counts)  # the same for every save of the run

    def snapshot(step: int, losses: dict | None = None, streams: list | None = None) -> dict:
        """config.json of the state after `step` steps."""
        config = dict(run_config or {})
        config.update(
            backend=backend, device=model.device, dtype=model.dtype, train=cfg.to_json(),
            corpus=corpus_record,
            batcher_state=batcher.get_state(), eval_batcher_state=evaluate.get_state(),
            target_step=end, evaluated=step in evaluated,
        )
        if group.distributed:  # a torchrun job: its ranks' streams, so that the same job can resume
            config.update(world_size=group.world, rank_batcher_states=streams)  # rank r resumes from streams[r]
        if losses is not None:
            config["metrics"] = {"train_loss": losses["train"], "val_loss": losses["val"],
                                 "optimum_train_loss": optimal_loss(evaluate.counts["train"]),
                                 "eval_batches": cfg.eval_batches}
        return config

    def save(step: int, losses: dict | None = None) -> str | None:
        """Checkpoint the state after `step` steps, unless it went non-finite. Every rank calls it."""
        streams = group.gather(batcher.get_state())  # each rank's batch stream, on rank 0
        if out is None:
            return None
        state = model.get_state()
        if not all(np.isfinite(state[k]).all() for k in STATE_KEYS[:3]):
            raise _nonfinite_error("the weights", float("nan"), step, cfg, out, saved["step"])
        path = str(save_checkpoint(ckdir, state, corpus.tokenizer, snapshot(step, losses, streams)))
        saved["step"] = step
        return path

    ckdir = _open_out(out, resumed, log)
    metrics = MetricsLog(ckdir, (resumed or {}).get("metrics"))
    with ckdir or contextlib.nullcontext(), _progress(progress, cfg.steps) as bar, _Signals() as signals, \
            np.errstate(over="ignore", invalid="ignore"):
        for step in range(start, end):
            stop = group.agree(signals.received)  # every rank, every step: none goes a step further
            if stop:
                raise _interrupted(stop, step, group.broadcast(save(step)), group, resume_args)
            if step % cfg.eval_interval == 0 and step not in evaluated:
                do_eval(step)
            show_sample(step)
            if save_interval and step > start and step % save_interval == 0:
                save(step)
            ts = time.perf_counter()
            loss = take_step()  # next batch, forward, backward, AdamW; batcher stays in lockstep
            train_s += time.perf_counter() - ts
            if not math.isfinite(loss):
                raise _nonfinite_error("loss", loss, step, cfg, out, saved["step"])
            bar.advance(step - start + 1, loss)
        losses = do_eval(end)
        show_sample(end)
        ckpt = save(end, losses)
        if ckpt is not None:
            log(f"saved checkpoint to {ckpt}")
        stop = group.agree(signals.received)
        if stop:  # arrived during the final evaluation or save: the run is complete
            raise _interrupted(stop, end, group.broadcast(ckpt), group, resume_args, complete=True)
    return TrainResult(
        step=end,
        train_loss=losses["train"],
        val_loss=losses["val"],
        wall_s=time.perf_counter() - t0,
        train_s=train_s,
        tokens_per_s=cfg.steps * cfg.batch_size * cfg.block_size / max(train_s, 1e-12),
        checkpoint=ckpt,
        eval_batches=cfg.eval_batches,
        history=list(metrics.records),
        config=snapshot(end, losses),
    )


def _open_out(out: Path | None, resumed: dict | None, log: Callable[[str], None]) -> CheckpointDir | None:
    """DIR opened for the run's saves; says so when the run replaces another run's checkpoint."""
    if out is None:
        return None
    ckdir = CheckpointDir.open(out, continuing=bool(resumed and resumed.get("same_dir")))
    if ckdir.replacing:
        log(replacing_warning(out, ckdir.contents))
    return ckdir


def _nonfinite_error(what: str, value: float, step: int, cfg: TrainConfig, out: Path | None,
                     saved_step: int | None) -> BigramError:
    """Name the step and the lr; say which checkpoint (if any) is still good."""
    kept = (f"the last finite checkpoint (step {saved_step}) is kept in {out}" if saved_step is not None
            else "no checkpoint was written for this run")
    became = f"loss became {value}" if what == "loss" else f"{what} became non-finite"
    return BigramError(
        f"{became} at step {step} with --lr {cfg.optim.lr}; lower --lr (the default is {DEFAULT_LR}); {kept}"
    )


def _interrupted(signum: int, step: int, ckpt: str | None, group: Group, resume_args: list[str] | None,
                 complete: bool = False) -> Interrupted:
    """What every rank raises; rank 0's message names the checkpoint and the command that continues it."""
    name = signal.Signals(signum).name
    if group.rank != 0:
        return Interrupted(f"{name} received: rank {group.rank} stopped at step {step} with the others",
                           exit_code=128 + signum)
    if ckpt is None:
        where = f"stopped at step {step}; nothing saved (no output directory)"
    elif complete:
        where = f"the run is complete: saved its final checkpoint (step {step}) to {ckpt}"
    else:
        again = continue_command(ckpt, group, resume_args)
        where = f"saved checkpoint at step {step} to {ckpt}; continue with `{again}`"
    return Interrupted(f"{name} received: {where}", exit_code=128 + signum)


def continue_command(ckpt: str, group: Group, args: list[str] | None = None) -> str:
    """The command that continues checkpoint `ckpt`, as the run was launched (torchrun's ranks, --data)."""
    rest = f"--resume {resume_arg(ckpt)}{''.join(' ' + shlex.quote(a) for a in args or [])}"
    if not group.distributed:
        return f"bigram train {rest}"
    one_host = group.world == _local_world()
    head = f"torchrun --nproc_per_node {group.world}" if one_host else "torchrun [your launch options]"
    return f"{head} -m bigram train --distributed {rest}"


def _local_world() -> int | None:
    """Ranks on this host (torchrun's LOCAL_WORLD_SIZE): all of them unless the job spans hosts."""
    raw = os.environ.get("LOCAL_WORLD_SIZE", "").strip()
    return int(raw) if raw.isdigit() else None


class _Signals:
    """While training, SIGINT/SIGTERM only set a flag; the loop saves and stops between steps.

    Handlers can only be installed from the main thread; elsewhere signals keep
    their usual effect.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received = 0
        self.previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.received = self.received or signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        return False


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
