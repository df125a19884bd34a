"""`bigram eval` (exact loss of a checkpoint) and `bigram fit` (the closed-form optimum)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.api.parallel import counting
from bigram.cli.common import get_backend, print_json, state
from bigram.cli.scale import TOKENIZER_HELP
from bigram.cli.options import val_data_option, val_fraction_option
from bigram.core.defaults import DEFAULT_SMOOTHING

# A checkpoint records where its corpus came from, but that path is never opened:
# a checkpoint from elsewhere must not make bigram read files the user did not name.
DATA_HELP = "UTF-8 text file the checkpoint was trained on (default: Tiny Shakespeare, cached)."


DISTRIBUTED_HELP = "Count as one rank of a torchrun job: each rank counts its shard, an all-reduce sums them."


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
    val_fraction: Optional[float] = typer.Option(
        None, "--val-fraction", metavar="F", help="Share of --data held out as val, 0 <= F < 1 "
        "(default: the split the checkpoint was trained with; 0: no val split)."
    ),
    val_data: Optional[Path] = val_data_option(),
) -> None:
    """Exact loss over each whole split, the best loss any bigram reaches on train, and the gap.

    gap = train_loss - optimum_train_loss, where the optimum is the train loss
    of the unsmoothed train MLE (`bigram fit --smoothing 0`).
    """
    from bigram.api.functions import load
    from bigram.core.evaluate import parse_split

    parse_split(split)
    st = state(ctx)
    model = load(checkpoint, get_backend(st.backend, ctx), device=st.device)  # an unknown backend fails first
    with counting(distributed, st.device) as (count, is_main):
        result = model.eval(data, splits=split, count=count, val_fraction=val_fraction, val_data=val_data)
    if not is_main:
        return
    for w in result.warnings:
        _say(w)
    if json_out:
        print_json(result.to_json())
        return
    _print_eval(result, result.corpus)


def _print_eval(r, corpus) -> None:
    print(f"corpus {corpus.source}: {corpus.describe()}")
    for name, loss in (("train", r.train_loss), ("val", r.val_loss)):
        if loss is not None:
            print(f"{name} loss (exact, every position): {loss:.6f}")
        elif name == "val" and not corpus.has_val:
            print("val loss:                            none (no val split)")
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
    val_fraction: Optional[float] = val_fraction_option(),
    val_data: Optional[Path] = val_data_option(),
) -> None:
    """Write the closed-form best table, log((C + k) / rowsum), as an ordinary checkpoint."""
    from bigram.api.functions import fit as run_fit
    from bigram.core.checkpoint import check_out, replacing_warning
    from bigram.core.evaluate import check_smoothing

    check_smoothing(smoothing)
    held = check_out(out)  # refused before the corpus is read and counted
    if held.kind == "checkpoint":
        print(replacing_warning(out, held, "fit"), file=sys.stderr)
    st = state(ctx)
    info = get_backend(st.backend, ctx)
    with counting(distributed, st.device) as (count, is_main):
        model = run_fit(data, smoothing, info, device=st.device, count=count, tokenizer=tokenizer,
                        val_fraction=val_fraction, val_data=val_data)
    if not is_main:
        return  # rank 0 alone writes the checkpoint
    ckpt = str(model.save(out))
    optimum = model.config["metrics"]["optimum_train_loss"]
    if json_out:
        print_json({"train_loss": model.train_loss, "val_loss": model.val_loss, "checkpoint": ckpt,
                    "smoothing": smoothing, "optimum_train_loss": optimum})
        return
    val = "no val split" if model.val_loss is None else f"val loss {model.val_loss:.6f}"
    print(f"fit (smoothing {smoothing:g}) on {model.config['corpus']['source']}: train loss {model.train_loss:.6f}, "
          f"{val} (optimum train loss {optimum:.6f}; exact)")
    print(f"saved checkpoint to {ckpt}")
