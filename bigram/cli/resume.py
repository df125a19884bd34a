"""`bigram train --resume DIR`: continue a run from its checkpoint, bit for bit.

Kept from the checkpoint (passing another value is an error): --batch-size,
--block-size, --lr, --lr-schedule, --min-lr, --decay-steps, --weight-decay,
--seed, --eval-interval, --eval-batches, --method, --dtype. A cosine schedule
keeps the horizon of the run it continues: --steps past it trains at --min-lr.
Free to choose: --steps (N more; default: up to the end of the interrupted
run), --out (default: DIR itself), --save-interval, --data (must
have the same vocabulary), --max-new-tokens, --json, --device, and --backend (default:
the checkpoint's; resuming on the same backend is what is bit-exact).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from bigram.cli.common import finish_run, get_backend, state
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


def resume_command(ctx: typer.Context, ck_dir: Path, *, data: Path | None, steps: int, out: Path,
                   save_interval: int | None, max_new_tokens: int, json_out: bool, dtype: str,
                   tokenizer: str | None, distributed: bool, val_fraction: float | None = None,
                   val_data: Path | None = None, sample_interval: int | None = None) -> None:
    from bigram.core import resume as R
    from bigram.core.checkpoint import check_out, load_checkpoint
    from bigram.api.functions import SAMPLE_INTERVAL_TOKENS
    from bigram.api.model import Model
    from bigram.core.data import Corpus
    from bigram.core.display import visible_text
    from bigram.core.train import train as run_train

    given = typed(ctx, list(R.KEPT) + ["steps", "out", "dtype"])
    ck = load_checkpoint(ck_dir)
    R.check_optimizer(ck, ck_dir)
    cfg = R.train_config(ck, ck_dir)
    R.check_overrides(cfg, given)
    if "dtype" in given and dtype != str(ck.weights.dtype):
        raise BigramError(f"--dtype {dtype} differs from the checkpoint's {ck.weights.dtype}: a resumed run keeps "
                          "its dtype; drop --dtype, or start a new run without --resume")
    if distributed:
        raise BigramError("--resume does not support --distributed yet (only rank 0's batches are saved); "
                          "resume on one process, or start a new distributed run")
    kind = getattr(ck.tokenizer, "kind", "char")
    if tokenizer is not None and tokenizer != kind:
        raise BigramError(f"--tokenizer {tokenizer} differs from the checkpoint's {kind}: a resumed run keeps its "
                          "tokenizer; drop --tokenizer")
    split = R.corpus_split(ck, ck_dir, val_fraction, val_data)
    cfg = R.with_steps(cfg, R.remaining_steps(ck, ck_dir, given.get("steps")))
    out = out if "out" in given else ck_dir
    check_out(out)  # a directory bigram must not write into is refused before the corpus is read
    resumed = R.resume_state(ck, ck_dir, out)
    backend = resume_backend(ctx, ck)
    info = get_backend(backend, ctx)
    # never config.json's corpus.source: only what the user passes. A char vocabulary is rebuilt
    # from the text (check_corpus then compares it); the byte tokenizer has nothing to rebuild.
    corpus = Corpus.load(data, tokenizer=None if kind == "char" else ck.tokenizer, val_fraction=split,
                         val_data=val_data)
    R.check_corpus(ck, corpus, ck_dir)
    corpus.check_block_size(cfg.block_size)
    model = info.cls.create(ck.weights, device=state(ctx).device, dtype=str(ck.weights.dtype), optim=cfg.optim)
    model.set_state(ck.state)
    batcher = R.restore_batcher(ck, corpus, cfg, ck_dir)
    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    say(f"resuming {ck_dir} at step {ck.step} for {cfg.steps} steps: backend {backend} on {model.device} "
        f"({model.dtype}); corpus {corpus.source}")
    done = Model(model, corpus.tokenizer, backend=backend)  # samples during the run, and the finish
    result = run_train(model, corpus, cfg, backend=backend, out_dir=out, batcher=batcher, log=say,
                       run_config={"seed": cfg.seed}, save_interval=save_interval, resumed=resumed,
                       sample_interval=sample_interval,
                       sample=lambda: visible_text(done.generate(SAMPLE_INTERVAL_TOKENS, seed=cfg.seed)))
    done.config, done.history, done.path, done.result = result.config, result.history, result.checkpoint, result
    finish_run(done, steps=cfg.steps, seed=cfg.seed, max_new_tokens=max_new_tokens, json_out=json_out,
               resumed_from=str(ck_dir))
