"""`bigram check`: every backend against the reference, tensor by tensor, on real data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import load_corpus, print_json, state
from bigram.core.errors import BigramError, require_positive
from bigram.core.defaults import DEFAULT_BATCH_SIZE, DEFAULT_BLOCK_SIZE, DEFAULT_DTYPE, DEFAULT_LR, DEFAULT_SEED


def _backend_names(spec: str | None, installed: list[str]) -> list[str]:
    """The --backends list; by default numpy first, then every other installed backend."""
    if spec is None:
        return ["numpy"] + sorted(n for n in installed if n != "numpy")
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise BigramError(f"--backends {spec!r} names a backend twice; list each once, e.g. --backends numpy,torch")
    if len(names) < 2:
        raise BigramError(f"--backends {spec!r} names {len(names)} backend(s); give a reference and at least "
                          "one more, e.g. --backends numpy,torch")
    return names


def _validate(dtype: str, steps: int, batch_size: int, block_size: int) -> None:
    from bigram.core.backend import check_dtype

    check_dtype(dtype)
    require_positive(steps=steps, batch_size=batch_size, block_size=block_size)


def _print_table(comparisons, header: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(header, highlight=False)
    for c in comparisons:
        table = Table("tensor", "max abs diff", "max rel diff", "tolerance", "",
                      title=f"{c.backend} ({c.device}) vs {c.reference}")
        for r in c.rows:
            table.add_row(r.tensor, f"{r.max_abs:.3g}", f"{r.max_rel:.3g}", f"{r.tol:.0e}" if r.tol else "0",
                          "OK" if r.ok else "FAIL", style=None if r.ok else "bold red")
        console.print(table)
        w = c.worst()
        big_abs, big_rel = max(c.rows, key=lambda r: r.max_abs), max(c.rows, key=lambda r: r.max_rel)
        verdict = "OK" if c.ok else f"FAIL ({sum(not r.ok for r in c.rows)} tensor(s) out of tolerance)"
        console.print(f"{c.backend} vs {c.reference}: {verdict}; largest abs diff {big_abs.max_abs:.3g} "
                      f"({big_abs.tensor}), largest rel diff {big_rel.max_rel:.3g} ({big_rel.tensor}); "
                      f"closest to tolerance: {w.tensor} ({w.max_rel:.3g} vs {w.tol:g})", highlight=False)


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
    steps: int = typer.Option(10, "--steps", help="AdamW steps whose losses, weights and moments are compared."),
    data: Optional[Path] = typer.Option(None, "--data", help="UTF-8 text file (default: Tiny Shakespeare, cached)."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Sequences per batch (B)."),
    block_size: int = typer.Option(DEFAULT_BLOCK_SIZE, "--block-size", help="Tokens per sequence (T)."),
    lr: float = typer.Option(DEFAULT_LR, "--lr", help="AdamW learning rate."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed for the weights, batches and sampling coins."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Cross-check backends: same weights and batches, compare logits, loss, gradients, N AdamW steps.

    Exits 1 when any tensor is out of tolerance.
    """
    from bigram.core.backend import AdamWConfig
    from bigram.core.check import CheckConfig, run_check
    from bigram.core.plugins import load_backends, report_errors

    _validate(dtype, steps, batch_size, block_size)
    reg = load_backends()
    if reg.errors:
        report_errors(reg)
    names = _backend_names(backends, list(reg.backends))
    if len(names) < 2:
        raise BigramError("only the numpy backend is installed; install another (see `bigram backends`) to check it")
    classes = [(n, reg.get(n).cls) for n in names]  # an unknown name fails here, with the list
    device = state(ctx).device  # for every backend that offers it; the others run on their default
    if device != "auto" and not any(device in cls.devices() for _, cls in classes):
        raise BigramError(f"--device {device}: none of {', '.join(names)} can run there; use --device auto")
    devices = {n: device if device != "auto" and device in cls.devices() else "auto" for n, cls in classes}
    corpus = load_corpus(data)
    corpus.check_block_size(block_size)
    cfg = CheckConfig(dtype=dtype, steps=steps, batch_size=batch_size, block_size=block_size, seed=seed,
                      optim=AdamWConfig(lr=lr))
    comparisons = run_check(classes, corpus, cfg, devices)
    ok = all(c.ok for c in comparisons)
    if json_out:
        print_json({"ok": ok, "reference": names[0], "dtype": dtype, "steps": steps, "data": corpus.source,
                    "batch_size": batch_size, "block_size": block_size, "seed": seed,
                    "comparisons": [c.to_json() for c in comparisons]})
    else:
        _print_table(comparisons, f"bigram check: {dtype}, {steps} AdamW steps (lr {lr:g}), batch {batch_size}x"
                                  f"{block_size}, seed {seed}, reference {names[0]}, data {corpus.source}")
    if not ok:
        print("check FAILED: a backend disagrees with the reference beyond tolerance", file=sys.stderr)
        raise typer.Exit(1)
