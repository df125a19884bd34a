"""`bigram eval` (exact loss of a checkpoint) and `bigram fit` (the closed-form optimum)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import build_model, get_backend, print_json, state
from bigram.cli.scale import TOKENIZER_HELP, load_corpus_as
from bigram.core.defaults import DEFAULT_SMOOTHING

# A checkpoint records where its corpus came from, but that path is never opened:
# a checkpoint from elsewhere must not make bigram read files the user did not name.
DATA_HELP = "UTF-8 text file the checkpoint was trained on (default: Tiny Shakespeare, cached)."


DISTRIBUTED_HELP = "Count as one rank of a torchrun job: each rank counts its shard, an all-reduce sums them."


@contextmanager
def counting(distributed: bool, device: str):
    """Yield (count function, is this the rank that reports): one process, or a torchrun job."""
    if not distributed:
        from bigram.core.data import bigram_counts

        yield bigram_counts, True
        return
    from bigram.backends.torch_dist import close_distributed, distributed_bigram_counts, init_distributed

    rank, _ = init_distributed(device)
    try:
        yield distributed_bigram_counts, rank == 0
    finally:
        close_distributed()


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(Path("out"), "--checkpoint", help="Checkpoint directory."),
    data: Optional[Path] = typer.Option(None, "--data", help=DATA_HELP),
    split: str = typer.Option("both", "--split", help="train, val or both."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object to stdout."),
    distributed: bool = typer.Option(False, "--distributed", help=DISTRIBUTED_HELP),
) -> None:
    """Exact loss over each whole split, the best loss any bigram reaches on train, and the gap.

    gap = train_loss - optimum_train_loss, where the optimum is the train loss
    of the unsmoothed train MLE (`bigram fit --smoothing 0`).
    """
    from bigram.core.checkpoint import load_checkpoint
    from bigram.core.evaluate import evaluate_counts, load_corpus_for, parse_split

    splits = parse_split(split)
    get_backend(state(ctx).backend, ctx)  # an unknown backend fails before any reading
    ck = load_checkpoint(checkpoint)
    with counting(distributed, state(ctx).device) as (count, is_main):
        corpus, counts, warnings = load_corpus_for(ck, data, count)
    if not is_main:
        return
    for w in warnings:
        _say(w)
    model = build_model(ctx, ck.weights, dtype=str(ck.weights.dtype))
    result = evaluate_counts(model, counts, splits)
    if json_out:
        print_json(result.to_json())
        return
    _print_eval(result, corpus)


def _print_eval(r, corpus) -> None:
    print(f"corpus {corpus.source}: {len(corpus.train):,} train / {len(corpus.val):,} val tokens")
    for name, loss in (("train", r.train_loss), ("val", r.val_loss)):
        if loss is not None:
            print(f"{name} loss (exact, every position): {loss:.6f}")
    print(f"optimum train loss (train MLE):      {r.optimum_train_loss:.6f}")
    if r.gap is not None:
        print(f"gap (train loss - optimum):          {r.gap:.6f}")


@app.command()
def fit(
    ctx: typer.Context,
    data: Optional[Path] = typer.Option(None, "--data", help="UTF-8 text file (default: Tiny Shakespeare, cached)."),
    smoothing: float = typer.Option(
        DEFAULT_SMOOTHING, "--smoothing", help="Add-k smoothing of the counts (0: the pure train MLE)."
    ),
    out: Path = typer.Option(Path("out-fit"), "--out", help="Checkpoint directory to write."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object to stdout."),
    distributed: bool = typer.Option(False, "--distributed", help=DISTRIBUTED_HELP),
) -> None:
    """Write the closed-form best table, log((C + k) / rowsum), as an ordinary checkpoint."""
    from bigram.core.backend import fresh_state
    from bigram.core.checkpoint import check_out, replacing_warning, save_checkpoint
    from bigram.core.evaluate import check_smoothing, evaluate_counts, fit_table, split_counts

    check_smoothing(smoothing)
    held = check_out(out)  # refused before the corpus is read and counted
    if held.kind == "checkpoint":
        print(replacing_warning(out, held, "fit"), file=sys.stderr)
    st = state(ctx)
    get_backend(st.backend, ctx)
    corpus = load_corpus_as(data, tokenizer)
    with counting(distributed, st.device) as (count, is_main):
        counts = split_counts(corpus, count=count)
    if not is_main:
        return  # rank 0 alone writes the checkpoint
    W = fit_table(counts["train"], smoothing)  # (V,V) float32 log-probabilities
    model = build_model(ctx, W, dtype=str(W.dtype))
    r = evaluate_counts(model, counts)  # measured by the backend, not assumed
    config = {
        "backend": st.backend, "device": model.device, "dtype": model.dtype, "fit": {"smoothing": smoothing},
        "corpus": {"sha256": corpus.sha256, "source": corpus.source},
        "metrics": {"train_loss": r.train_loss, "val_loss": r.val_loss, "optimum_train_loss": r.optimum_train_loss},
    }
    record = {"step": 0, "train_loss": r.train_loss, "val_loss": r.val_loss}  # `bigram plot` shows the fit's losses
    ckpt = str(save_checkpoint(out, fresh_state(W), corpus.tokenizer, config, metrics=[record]))
    if json_out:
        print_json({"train_loss": r.train_loss, "val_loss": r.val_loss, "checkpoint": ckpt,
                    "smoothing": smoothing, "optimum_train_loss": r.optimum_train_loss})
        return
    print(f"fit (smoothing {smoothing:g}) on {corpus.source}: train loss {r.train_loss:.6f}, "
          f"val loss {r.val_loss:.6f} (optimum train loss {r.optimum_train_loss:.6f})")
    print(f"saved checkpoint to {ckpt}")
