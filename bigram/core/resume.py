"""Resuming a run from its checkpoint, exactly where it stopped.

What a checkpoint restores: the weights, the AdamW moments and step, the train
batcher's PCG64 state (and the estimate batchers' with --eval-batches), the
run's hyperparameters and metrics.jsonl up to the checkpoint's step. N steps,
then a resume for N more, gives the same bits as 2N steps in one run.

Paths written in config.json (corpus.source) are reported, never opened: the
corpus is the one the user passes now, checked against the saved vocabulary.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from bigram.core.backend import AdamWConfig
from bigram.core.checkpoint import Checkpoint, resolve_checkpoint_dir, resume_arg
from bigram.core.data import Batcher, Corpus
from bigram.core.defaults import DEFAULT_METHOD, DEFAULT_VAL_FRACTION
from bigram.core.errors import BigramError, require_positive
from bigram.core.metrics import read_metrics
from bigram.core.splits import val_fraction_for
from bigram.core.train import TrainConfig, make_train_batcher

# Flags a resumed run keeps from its checkpoint; passing another value is an error.
KEPT = {"batch_size": "--batch-size", "block_size": "--block-size", "seed": "--seed", "lr": "--lr",
        "weight_decay": "--weight-decay", "eval_interval": "--eval-interval", "eval_batches": "--eval-batches",
        "method": "--method", "lr_schedule": "--lr-schedule", "min_lr": "--min-lr", "decay_steps": "--decay-steps"}
_INT_FIELDS = ("steps", "batch_size", "block_size", "seed", "eval_interval")
_OPTIM_FIELDS = ("lr", "beta1", "beta2", "eps", "weight_decay")


def _bad(ck_dir: Path, what: str) -> BigramError:
    return BigramError(f"checkpoint {ck_dir} cannot be resumed: {what}; resume from a checkpoint written by "
                       "`bigram train`, or start a new run without --resume")


def check_optimizer(ck: Checkpoint, ck_dir: Path) -> None:
    """Without optimizer.safetensors the AdamW moments and step would silently restart at zero."""
    if not ck.has_optimizer:
        raise _bad(ck_dir, "its optimizer.safetensors (the AdamW moments and step) is missing, so the run "
                           "cannot go on where it stopped")


def train_config(ck: Checkpoint, ck_dir: Path) -> TrainConfig:
    """The run's hyperparameters, read from config.json's 'train' and checked."""
    t = ck.config.get("train")
    if not isinstance(t, dict) or not isinstance(t.get("optim"), dict):
        raise _bad(ck_dir, "config.json has no 'train' settings")
    ints = {k: t.get(k) for k in _INT_FIELDS}
    if any(type(v) is not int for v in ints.values()):
        raise _bad(ck_dir, f"config.json's 'train' needs integers {', '.join(_INT_FIELDS)}")
    eb = t.get("eval_batches")
    optim = {k: t["optim"].get(k) for k in _OPTIM_FIELDS}
    if any(type(v) not in (int, float) or not math.isfinite(v) for v in optim.values()):
        raise _bad(ck_dir, f"config.json's 'train.optim' needs finite numbers {', '.join(_OPTIM_FIELDS)}")
    if eb is not None and type(eb) is not int:
        raise _bad(ck_dir, "config.json's 'train.eval_batches' must be an integer or null")
    method = t.get("method", DEFAULT_METHOD)  # the step method is kept too: it decides the exact bits
    # A checkpoint from before lr schedules trained at a constant lr: it resumes that way.
    sched = {"lr_schedule": t.get("lr_schedule", "constant"), "min_lr": t.get("min_lr"),
             "decay_steps": t.get("decay_steps")}
    if sched["lr_schedule"] != "constant" and (type(sched["decay_steps"]) is not int
                                               or type(sched["min_lr"]) not in (int, float)):
        raise _bad(ck_dir, "config.json's 'train' has a cosine lr_schedule without integer decay_steps and "
                           "numeric min_lr")
    cfg = TrainConfig(**ints, eval_batches=eb, method=method, **sched,
                      optim=AdamWConfig(**{k: float(v) for k, v in optim.items()}))
    try:
        cfg.validate()
    except BigramError as e:  # the saved settings are at fault, not flags the user typed
        # "--min-lr must be ..." -> "min_lr must be ...": the key in config.json, not a flag
        problem = re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), str(e).split("; ")[0])
        raise _bad(ck_dir, f"config.json's 'train' is invalid ({problem})") from None
    return cfg


def check_overrides(cfg: TrainConfig, given: dict) -> None:
    """`given`: flags the user typed (name -> value). Kept hyperparameters must match the checkpoint's."""
    saved = {**{k: getattr(cfg, k) for k in ("batch_size", "block_size", "seed", "eval_interval", "eval_batches",
                                             "method", "lr_schedule", "min_lr", "decay_steps")},
             "lr": cfg.optim.lr, "weight_decay": cfg.optim.weight_decay}
    for name, value in given.items():
        if name in KEPT and value != saved[name]:
            raise BigramError(
                f"{KEPT[name]} {value} differs from the checkpoint's {saved[name]}: a resumed run keeps its "
                f"hyperparameters; drop {KEPT[name]}, or start a new run without --resume"
            )


def remaining_steps(ck: Checkpoint, ck_dir: Path, steps: int | None) -> int:
    """--steps N: N more steps; no --steps: up to the end of the interrupted run."""
    if steps is not None:
        require_positive(steps=steps)  # 0 more steps is no run (an ended run's "nothing left" is auto's alone)
        return steps
    target = ck.config.get("target_step")
    if type(target) is not int or target <= ck.step:
        raise BigramError(f"checkpoint {ck_dir} is at step {ck.step}, the end of its run; "
                          "pass --steps N to train N more steps")
    return target - ck.step


def check_corpus(ck: Checkpoint, corpus: Corpus, ck_dir: Path, warn=None) -> None:
    """Another vocabulary is an error (the table's rows would mean other characters); another text, a warning."""
    was = ck.config.get("corpus") if isinstance(ck.config.get("corpus"), dict) else {}
    source = was.get("source") if isinstance(was.get("source"), str) else "unknown"
    if corpus.tokenizer != ck.tokenizer:
        raise BigramError(
            f"corpus {corpus.source} has a vocabulary of {corpus.tokenizer.vocab_size} characters but checkpoint "
            f"{ck_dir} was trained on {ck.tokenizer.vocab_size} other ones; pass --data with the corpus it was "
            f"trained on (config.json names {json.dumps(source)})"
        )
    if was.get("val_sha256") is not None and was.get("val_sha256") != corpus.val_sha256:
        (warn or _warn)(
            f"warning: --val-data {corpus.val_source} is not the validation file checkpoint {ck_dir} used (sha256 "
            f"differs; config.json names {json.dumps(was.get('val_source'))}); its val losses are for this file"
        )
    if was.get("sha256") != corpus.sha256:
        (warn or _warn)(
            f"warning: corpus {corpus.source} is not the text checkpoint {ck_dir} was trained on (sha256 differs; "
            f"config.json names {json.dumps(source)}); the vocabulary matches, so training goes on"
        )


def restore_batcher(ck: Checkpoint, corpus: Corpus, cfg: TrainConfig, ck_dir: Path) -> Batcher:
    batcher = make_train_batcher(corpus, cfg)
    batcher.set_state(rank_stream(ck, ck_dir, 0))
    return batcher


def rank_stream(ck: Checkpoint, ck_dir: Path, rank: int) -> dict:
    """The batch stream rank `rank` resumes from (a plain run's is 'batcher_state'), checked as a PCG64 state."""
    streams = ck.config.get("rank_batcher_states")
    key = "batcher_state" if streams is None else f"rank_batcher_states[{rank}]"
    state = ck.config.get("batcher_state") if streams is None else (streams[rank] if rank < len(streams) else None)
    try:
        np.random.PCG64().state = state
    except (TypeError, ValueError, KeyError, OverflowError):
        raise _bad(ck_dir, f"config.json's '{key}' is not a PCG64 state") from None
    return state


def check_world(ck: Checkpoint, ck_dir: Path, distributed: bool, world: int) -> None:
    """A run resumes on as many ranks as wrote it: each rank draws its own stream (core/distributed.py),
    so another number of ranks would train on other batches (and sum its gradients in another order)."""
    saved = ck.config.get("world_size")
    if saved is None and distributed:
        raise BigramError(f"checkpoint {ck_dir} was written by one process, not a torchrun job; resume it "
                          "without torchrun and --distributed")
    if saved is not None and (not distributed or saved != world):
        now = f"this job has {world}" if distributed else "this is one process"
        raise BigramError(
            f"checkpoint {ck_dir} was written by a torchrun job of {saved} rank{'s' if saved != 1 else ''} and "
            f"{now}: resume it with `torchrun --nproc_per_node {saved} -m bigram train --distributed --resume "
            f"{resume_arg(ck_dir)} ...` (another number of ranks would draw other batches)")
    streams = ck.config.get("rank_batcher_states")
    if saved is not None and (not isinstance(streams, list) or len(streams) != saved):
        raise _bad(ck_dir, f"config.json's 'rank_batcher_states' does not hold the streams of its {saved} ranks")
    for rank in range(saved or 0):  # rank 0 checks them all: a bad stream is its one line, not rank r's crash
        rank_stream(ck, ck_dir, rank)


def check_same_run(ck: Checkpoint, ck_dir: Path, fresh: TrainConfig, steps: int, dtype: str) -> None:
    """--resume auto: the checkpoint in --out must be the run this command starts, every setting alike
    (typed or default), its total --steps included; anything else is another run, not to be continued."""
    fresh.validate()  # a bad flag is named as such, not as another run's
    saved = train_config(ck, ck_dir)
    target = ck.config.get("target_step")
    pairs = {"--steps": (target, steps), "--dtype": (str(ck.weights.dtype), dtype)}
    now = fresh.resolved(steps)
    for name, flag in KEPT.items():
        if name in ("lr", "weight_decay"):
            pairs[flag] = (getattr(saved.optim, name), getattr(now.optim, name))
        else:
            pairs[flag] = (getattr(saved, name), getattr(now, name))
    for flag, (was, new) in pairs.items():
        if was != new:
            raise BigramError(
                f"--resume auto: --out {ck_dir} holds a checkpoint of another run ({flag} {was} there, {new} "
                f"here); pass the flags of the run that wrote it, another --out, or `--resume {resume_arg(ck_dir)} --steps N` "
                "to train that run N more steps")
    if type(target) is int and ck.step > target:
        raise _bad(ck_dir, f"it is at step {ck.step}, past its run's end ({target})")


def continued_metrics(ck: Checkpoint, ck_dir: Path) -> list[dict]:
    """ck_dir's metrics.jsonl records up to the checkpoint's step (later ones never happened)."""
    step, evaluated = ck.step, bool(ck.config.get("evaluated"))
    return [r for r in read_metrics(resolve_checkpoint_dir(ck_dir))
            if isinstance(r, dict) and isinstance(r.get("step"), int)
            and (r["step"] < step or (r["step"] == step and evaluated))]


def resume_state(ck: Checkpoint, ck_dir: Path, out: Path) -> dict:
    """What train() needs to continue rather than start: see its `resumed` argument. The run's
    metrics.jsonl starts from `metrics` and replaces out's with the run's first save."""
    return {"evaluated": bool(ck.config.get("evaluated")), "eval_batcher_state": ck.config.get("eval_batcher_state"),
            "same_dir": _same(ck_dir, out), "metrics": continued_metrics(ck, ck_dir)}


def _same(a: Path, b: Path) -> bool:
    """The same directory, however each path spells it (`.`, a link, ...)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not there (yet)
        return os.path.abspath(a) == os.path.abspath(b)


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr)


def with_steps(cfg: TrainConfig, steps: int) -> TrainConfig:
    return replace(cfg, steps=steps)


def corpus_split(ck: Checkpoint, ck_dir: Path, val_fraction: float | None, val_data) -> float | None:
    """The val split a resumed run must keep: another one would change the train split, so its batches.

    Returns the saved --val-fraction (0.1 for checkpoints from before the option),
    or None when the run validated on a separate file, which must be passed again.
    """
    saved = ck.config.get("corpus") if isinstance(ck.config.get("corpus"), dict) else {}
    source = saved.get("val_source")
    if source is not None:
        if val_data is None:
            raise BigramError(f"checkpoint {ck_dir} validated on a separate file ({json.dumps(source)}); pass "
                              "--val-data FILE again to resume it (a path in a checkpoint is never opened)")
        val_fraction_for(val_fraction, True)  # --val-fraction beside --val-data is an error
        return None
    f = saved.get("val_fraction", DEFAULT_VAL_FRACTION)
    if type(f) not in (int, float) or not 0 <= f < 1:
        raise _bad(ck_dir, "config.json's 'corpus.val_fraction' is not a number from 0 to 1")
    if val_data is not None:
        raise BigramError(f"--val-data would train on all of --data, but checkpoint {ck_dir} held out "
                          f"--val-fraction {f:g} of it; drop --val-data to resume the run as it was")
    if val_fraction is not None and val_fraction != f:
        raise BigramError(f"--val-fraction {val_fraction:g} differs from the checkpoint's {f:g}: a resumed run keeps "
                          "its split (another would change its batches); drop --val-fraction")
    return float(f)
