"""`bigram plot`: loss curves with the optimum, and the learned table as a heatmap, in one PNG."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import get_backend, state
from bigram.cli.evaluate import DATA_HELP
from bigram.core.errors import BigramError

PLOT_FILE = "plot.png"


@app.command()
def plot(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(Path("out"), "--checkpoint", help="Checkpoint directory."),
    out: Optional[Path] = typer.Option(
        None, "--out", help=f"Image FILE to write, exactly as named (default: DIR/{PLOT_FILE}). PNG, unless its "
        "suffix names another format matplotlib writes (.pdf, .svg).",
    ),
    data: Optional[Path] = typer.Option(None, "--data", help=DATA_HELP + " Used for the optimum line."),
) -> None:
    """Draw DIR/metrics.jsonl's train and val loss (the whole run, and its last 90% against the optimum)
    beside P(next | current)."""
    from bigram.api.functions import load
    from bigram.core.plot import pyplot

    pyplot()  # a missing matplotlib is reported before any work
    out = out or checkpoint / PLOT_FILE
    if out.is_dir() and not out.is_symlink():  # a link, even to a directory, gets the link error
        raise BigramError(f"--out {out} is a directory, but --out names the image file to write; "
                          f"pass a file name, e.g. --out {out / PLOT_FILE}")
    st = state(ctx)
    model = load(checkpoint, get_backend(st.backend, ctx), device=st.device)
    if not model.history:
        print(f"warning: {checkpoint} has no metrics.jsonl; the loss panel is empty", file=sys.stderr)
    optimum, corpus = model.optimum_train_loss, None
    if data is not None:  # the optimum of the corpus given, which also ranks the heatmap's rows
        result = model.eval(data, splits="train")
        for w in result.warnings:
            print(w, file=sys.stderr)
        optimum, corpus = result.optimum_train_loss, result.corpus
    elif optimum is None:
        print("warning: the checkpoint records no optimum, so the optimum line is left out; "
              "pass --data FILE to draw it", file=sys.stderr)
    path = model.plot(out, data=corpus, optimum=optimum,
                      title=f"bigram {checkpoint} (backend {st.backend}, step {model.step})")
    print(path)
