"""`bigram plot`: loss curves with the optimum, and the learned table as a heatmap, in one PNG."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import build_model, get_backend, state
from bigram.cli.evaluate import DATA_HELP
from bigram.core.errors import BigramError

PLOT_FILE = "plot.png"


def optimum_for(ck, data: Path | None) -> float | None:
    """The train MLE's train loss: recorded by train/fit in config.json, else counted from --data."""
    known = (ck.config.get("metrics") or {}).get("optimum_train_loss")
    if isinstance(known, (int, float)) and data is None:
        return float(known)
    if data is None:
        print("warning: the checkpoint records no optimum, so the optimum line is left out; "
              "pass --data FILE to draw it", file=sys.stderr)
        return None
    from bigram.core.evaluate import load_corpus_for
    from bigram.core.optimum import optimal_loss

    _, counts, warnings = load_corpus_for(ck, data)
    for w in warnings:
        print(w, file=sys.stderr)
    return optimal_loss(counts["train"])


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
    """Draw DIR/metrics.jsonl's train and val loss with the optimum, beside P(next | current)."""
    import numpy as np  # here, not at the top: `bigram --help` stays free of NumPy

    from bigram.core.checkpoint import load_checkpoint
    from bigram.core.explain import probs_of
    from bigram.core.metrics import read_metrics
    from bigram.core.plot import plot_run, pyplot

    pyplot()  # a missing matplotlib is reported before any work
    out = out or checkpoint / PLOT_FILE
    if out.is_dir() and not out.is_symlink():  # a link, even to a directory, gets the link error
        raise BigramError(f"--out {out} is a directory, but --out names the image file to write; "
                          f"pass a file name, e.g. --out {out / PLOT_FILE}")
    st = state(ctx)
    get_backend(st.backend, ctx)
    ck = load_checkpoint(checkpoint)
    records = read_metrics(checkpoint)
    if not records:
        print(f"warning: {checkpoint} has no metrics.jsonl; the loss panel is empty", file=sys.stderr)
    optimum = optimum_for(ck, data)
    model = build_model(ctx, ck.weights, dtype=str(ck.weights.dtype))
    V = ck.tokenizer.vocab_size
    rows = np.arange(V)[None, :]  # (1,V): every character once
    probs = probs_of(model, rows, model.forward(rows)[0])[0]  # (V,V) from the backend
    chars = [ck.tokenizer.decode([i]) for i in range(V)]
    path = plot_run(out, records, probs, chars, optimum=optimum,
                    title=f"bigram {checkpoint} (backend {st.backend}, step {ck.step})")
    print(path)
