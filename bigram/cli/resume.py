"""`bigram train --resume DIR`: continue a run from its checkpoint, bit for bit.

Kept from the checkpoint (passing another value is an error): --batch-size,
--block-size, --lr, --lr-schedule, --min-lr, --decay-steps, --weight-decay,
--seed, --eval-interval, --eval-batches, --method, --dtype. A cosine schedule
keeps the horizon of the run it continues: --steps past it trains at --min-lr.
Free to choose: --steps (N more; default: up to the end of the interrupted
run), --out (default: DIR itself), --save-interval, --data (must
have the same vocabulary), --max-new-tokens, --json, --device, and --backend (default:
the checkpoint's; resuming on the same backend is what is bit-exact).

`--resume auto` continues the run in --out when it holds one and starts it
otherwise; the command line then describes the whole run (--steps is its
total, every setting must be the checkpoint's). Under torchrun rank 0 reads
the checkpoint and sends it to the other ranks; each resumes its own batch
stream, and the job must have as many ranks as the one that saved it
(docs/scale.md, "Preemption and restarts").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from bigram.cli.common import finish_run, get_backend, print_json, state
from bigram.core.errors import BigramError


def typed(ctx: typer.Context, names) -> dict:
    """The options among `names` the user typed on the command line (not left at their defaults)."""
    out = {}
    for name in names:
        src = ctx.get_parameter_source(name)
        if src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP"):
            out[name] = ctx.params[name]
    return out


def resume_backend(ctx: typer.Context, ck) -> str:
    """--backend when given (or $BIGRAM_BACKEND), else the one that wrote the checkpoint."""
    root = ctx.find_root()
    if typed(root, ["backend"]) or os.environ.get("BIGRAM_BACKEND"):
        return state(ctx).backend
    saved = ck.config.get("backend")
    return saved if isinstance(saved, str) and saved else state(ctx).backend


def resume_command(ctx: typer.Context, resume: str, *, data: Path | None, steps: int, out: Path,
                   save_interval: int | None, max_new_tokens: int, json_out: bool, dtype: str,
                   tokenizer: str | None, distributed: bool, val_fraction: float | None = None,
                   val_data: Path | None = None, sample_interval: int | None = None) -> bool:
    """Continue the run in ck_dir; `--resume auto` (ck_dir "auto"): the one in --out, if there is one.

    Returns False when auto found nothing to continue (the caller starts the run fresh, in the
    process group joined here). In a torchrun job rank 0 alone reads the checkpoint and hands it
    to the other ranks, so they cannot decide differently and need not see --out.
    """
    from bigram.api.parallel import TrainRun
    from bigram.core.checkpoint import RESUME_AUTO
    from bigram.core.distributed import from_rank0

    auto = resume == RESUME_AUTO  # `./auto` is a directory of that name
    st = state(ctx)
    run = TrainRun(st.backend, st.device, distributed)
    try:
        ck_dir = out if auto else Path(resume)
        found = from_rank0(run.group, lambda: _read(ctx, ck_dir, out, auto, steps, dtype, distributed))
        if found is None:
            return False  # the group stays joined for the fresh run
        ck, resumed, out = found
        _continue(ctx, run, ck, resumed, ck_dir, out, auto=auto, data=data, steps=steps,
                  save_interval=save_interval, max_new_tokens=max_new_tokens, json_out=json_out,
                  tokenizer=tokenizer, val_fraction=val_fraction, val_data=val_data,
                  sample_interval=sample_interval)
    except BaseException:
        run.close()
        raise
    run.close()
    return True


def _read(ctx: typer.Context, ck_dir: Path, out: Path, auto: bool, steps: int, dtype: str, distributed: bool):
    """Rank 0: the checkpoint to continue, checked, with what train() needs to continue it (None: auto
    found no checkpoint in --out)."""
    from bigram.core import resume as R
    from bigram.core.checkpoint import check_out, load_checkpoint

    if auto and check_out(out).kind != "checkpoint":
        return None
    given = typed(ctx, list(R.KEPT) + ["steps", "out", "dtype"])
    ck = load_checkpoint(ck_dir)
    R.check_optimizer(ck, ck_dir)
    cfg = R.train_config(ck, ck_dir)
    if auto:  # every setting, typed or not, must be the checkpoint's
        R.check_same_run(ck, ck_dir, fresh_config(ctx), steps, dtype)
    R.check_overrides(cfg, given)
    if "dtype" in given and dtype != str(ck.weights.dtype):
        raise BigramError(f"--dtype {dtype} differs from the checkpoint's {ck.weights.dtype}: a resumed run keeps "
                          "its dtype; drop --dtype, or start a new run without --resume")
    R.check_world(ck, ck_dir, distributed, _world(distributed))
    out = out if auto or "out" in given else ck_dir
    check_out(out)  # a directory bigram must not write into is refused before the corpus is read
    return ck, R.resume_state(ck, ck_dir, out), out


def _world(distributed: bool) -> int:
    import torch.distributed as dist  # only on the --distributed path, where torch is loaded already

    return dist.get_world_size() if distributed else 1


def fresh_config(ctx: typer.Context):
    """The TrainConfig this command line would start a fresh run with (defaults included)."""
    from bigram.core.backend import AdamWConfig
    from bigram.core.train import TrainConfig

    p = ctx.params
    return TrainConfig(steps=p["steps"], batch_size=p["batch_size"], block_size=p["block_size"], seed=p["seed"],
                       eval_interval=p["eval_interval"], eval_batches=p["eval_batches"], method=p["method"],
                       lr_schedule=p["lr_schedule"], min_lr=p["min_lr"], decay_steps=p["decay_steps"],
                       optim=AdamWConfig(lr=p["lr"], weight_decay=p["weight_decay"]))


def _continue(ctx, run, ck, resumed, ck_dir: Path, out: Path, *, auto: bool, data, steps, save_interval,
              max_new_tokens, json_out, tokenizer, val_fraction, val_data, sample_interval) -> None:
    from bigram.core import resume as R
    from bigram.api.functions import SAMPLE_INTERVAL_TOKENS
    from bigram.api.model import Model
    from bigram.core.data import Corpus
    from bigram.core.display import visible_text
    from bigram.core.train import train as run_train

    cfg = R.train_config(ck, ck_dir)
    kind = getattr(ck.tokenizer, "kind", "char")
    if tokenizer is not None and tokenizer != kind:
        raise BigramError(f"--tokenizer {tokenizer} differs from the checkpoint's {kind}: a resumed run keeps its "
                          "tokenizer; drop --tokenizer")
    split = R.corpus_split(ck, ck_dir, val_fraction, val_data)
    more = steps - ck.step if auto else R.remaining_steps(ck, ck_dir, typed(ctx, ["steps"]).get("steps"))
    say = (lambda msg: print(msg, file=sys.stderr)) if run.is_main else (lambda msg: None)  # noqa: E731
    # never config.json's corpus.source: only what the user passes. A char vocabulary is rebuilt
    # from the text (check_corpus then compares it); the byte tokenizer has nothing to rebuild.
    # Checked before an ended run's "nothing left": another --data is another run, not that one.
    corpus = Corpus.load(data, tokenizer=None if kind == "char" else ck.tokenizer, val_fraction=split,
                         val_data=val_data)
    R.check_corpus(ck, corpus, ck_dir, warn=None if run.is_main else (lambda msg: None))
    if more == 0:  # auto, and the run had ended: its final checkpoint is there
        say(f"--resume auto: checkpoint {out} is at step {ck.step}, the end of this run; nothing left to train")
        if json_out and run.is_main:
            print_json(ended_result(ck, ck_dir, out))
        return
    cfg = R.with_steps(cfg, more)
    backend = resume_backend(ctx, ck)
    if run.distributed and backend != "torch":
        raise BigramError(f"--distributed runs on torch.distributed, but checkpoint {ck_dir} was written by "
                          f"{backend!r}; pass --backend torch")
    run.backend = backend
    info = get_backend(backend, ctx)
    corpus.check_block_size(cfg.block_size)
    model = info.cls.create(ck.weights, device=state(ctx).device, dtype=str(ck.weights.dtype), optim=cfg.optim)
    model.set_state(ck.state)
    model, batcher = run.setup(model, corpus, cfg, R.rank_stream(ck, ck_dir, run.rank))
    batcher = batcher or R.restore_batcher(ck, corpus, cfg, ck_dir)
    say(f"resuming {ck_dir} at step {ck.step} for {cfg.steps} steps: backend {backend} on {model.device} "
        f"({model.dtype}); corpus {corpus.source}")
    done = Model(model, corpus.tokenizer, backend=backend)  # samples during the run, and the finish
    result = run_train(model, corpus, cfg, backend=backend, out_dir=out, batcher=batcher, log=say,
                       run_config={"seed": cfg.seed}, save_interval=save_interval, resumed=resumed,
                       sample_interval=sample_interval, group=run.group, resume_args=data_args(data, val_data),
                       sample=lambda: visible_text(done.generate(SAMPLE_INTERVAL_TOKENS, seed=cfg.seed)))
    done.config, done.history, done.path, done.result = result.config, result.history, result.checkpoint, result
    if run.is_main:
        finish_run(done, steps=cfg.steps, seed=cfg.seed, max_new_tokens=max_new_tokens, json_out=json_out,
                   resumed_from=str(ck_dir))


def ended_result(ck, ck_dir: Path, out: Path) -> dict:
    """--json's object for a run that had ended: the numbers its final checkpoint recorded, no step trained now."""
    m = ck.config.get("metrics") if isinstance(ck.config.get("metrics"), dict) else {}
    return {"backend": ck.config.get("backend"), "device": ck.config.get("device"), "steps": ck.step,
            "train_loss": m.get("train_loss"), "val_loss": m.get("val_loss"), "exact": m.get("eval_batches") is None,
            "eval_batches": m.get("eval_batches"), "wall_s": 0.0, "tokens_per_s": 0.0, "checkpoint": str(out),
            "resumed_from": str(ck_dir)}


def data_args(data: Path | None, val_data: Path | None) -> list[str]:
    """The corpus flags a resume needs to read the same text (none: the default corpus)."""
    return [*(["--data", str(data)] if data is not None else []),
            *(["--val-data", str(val_data)] if val_data is not None else [])]
