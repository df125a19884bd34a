"""`bigram plot`: loss curves with the optimum, and the learned table as a heatmap, in one PNG."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.evaluate import DATA_HELP
from bigram.core.errors import BigramError

PLOT_FILE = "plot.png"


@app.command()
def plot(
    checkpoint: Path = typer.Option(Path("out"), "--checkpoint", help="Checkpoint directory."),
    out: Optional[Path] = typer.Option(
        None, "--out", help=f"Image FILE to write, exactly as named (default: DIR/{PLOT_FILE}). PNG, unless its "
        "suffix names another format matplotlib writes (.pdf, .svg).",
    ),
    data: Optional[Path] = typer.Option(None, "--data", help=DATA_HELP + " Used for the optimum line."),
) -> None:
    """Draw DIR/metrics.jsonl's train and val loss (the whole run, and its last 90% against the optimum)
    beside P(next | current).

    The plot reads the saved table with NumPy and draws it: --backend and --device
    do not matter here, and no framework (torch, jax) is loaded, so it starts fast.
    """
    from bigram.core.plot import plot_checkpoint, require_matplotlib

    require_matplotlib()  # a missing matplotlib is reported before any work
    out = out or checkpoint / PLOT_FILE
    if out.is_dir() and not out.is_symlink():  # a link, even to a directory, gets the link error
        raise BigramError(f"--out {out} is a directory, but --out names the image file to write; "
                          f"pass a file name, e.g. --out {out / PLOT_FILE}")
    print(plot_checkpoint(checkpoint, out, data=data, warn=lambda msg: print(msg, file=sys.stderr)))
