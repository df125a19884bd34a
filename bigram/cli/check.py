"""`bigram check`: every backend against the reference, tensor by tensor, on real data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import print_json, state
from bigram.cli.options import val_data_option, val_fraction_option
from bigram.core.defaults import DEFAULT_BATCH_SIZE, DEFAULT_BLOCK_SIZE, DEFAULT_DTYPE, DEFAULT_LR, DEFAULT_SEED


def _print_table(report) -> None:
    from rich.console import Console
    from rich.table import Table

    from bigram.core.check import fmt_tol

    console = Console()
    console.print(report.summary(), highlight=False)
    for c in report.comparisons + report.paths:
        if c.error is not None:  # the backend raised, or returned what cannot be compared
            console.print(report.verdict(c), markup=False, highlight=False)
            continue
        table = Table("tensor", "max abs diff", "max rel diff", "tolerance", "", "closer to float64", title=c.title)
        for r in c.rows:
            table.add_row(r.tensor, f"{r.max_abs:.3g}", f"{r.max_rel:.3g}", fmt_tol(r.tol),
                          "OK" if r.ok else "FAIL", r.closer or "", style=None if r.ok else "bold red")
        console.print(table)
        for note in report.notes(c):
            console.print("  " + note, markup=False, highlight=False)
        console.print(report.verdict(c), markup=False, highlight=False)


@app.command()
def check(
    ctx: typer.Context,
    backends: Optional[str] = typer.Option(
        None, "--backends", help="Comma-separated; the first is the reference. Default: numpy, then every other installed backend."
    ),
    dtype: str = typer.Option(
        DEFAULT_DTYPE, "--dtype",
        help="float32 (the default: what train runs and saves) or float64 (tolerances 1e-12 instead of 1e-6 to 1e-3).",
    ),
    steps: int = typer.Option(10, "--steps", help="AdamW steps (cosine lr over them) whose losses, weights and moments are compared."),
    data: Optional[Path] = typer.Option(None, "--data", help="UTF-8 text file (default: Tiny Shakespeare, cached)."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Sequences per batch (B)."),
    block_size: int = typer.Option(DEFAULT_BLOCK_SIZE, "--block-size", help="Tokens per sequence (T)."),
    lr: float = typer.Option(DEFAULT_LR, "--lr", help="AdamW learning rate."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed for the weights, batches and sampling coins."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    val_fraction: Optional[float] = val_fraction_option(),
    val_data: Optional[Path] = val_data_option(),
) -> None:
    """Cross-check backends: same weights and batches, compare logits, loss, gradients, N AdamW steps.

    Both training paths (textbook and counts, with the cosine lr schedule) and
    the dtype each backend computes in. Exits 1 when any tensor is out of tolerance.
    """
    from bigram.api.functions import check as run_check

    names = None if backends is None else backends.split(",")
    report = run_check(names, data, dtype=dtype, steps=steps, batch_size=batch_size, block_size=block_size, lr=lr,
                       seed=seed, device=state(ctx).device, val_fraction=val_fraction, val_data=val_data)
    if json_out:
        print_json(report.to_json())
    else:
        _print_table(report)
    if not report.ok:
        print("check FAILED: a backend failed, or disagrees with the reference beyond tolerance", file=sys.stderr)
        raise typer.Exit(1)
