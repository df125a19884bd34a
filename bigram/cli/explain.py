"""`bigram explain`: one real batch through the model, step by step, as in the lecture."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import get_backend, state
from bigram.core.defaults import DEFAULT_SEED


@app.command()
def explain(
    ctx: typer.Context,
    data: Optional[Path] = typer.Option(None, "--data", help="UTF-8 text file (default: Tiny Shakespeare, cached)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Sequences in the batch (B)."),
    block_size: int = typer.Option(8, "--block-size", help="Tokens per sequence (T)."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed of the batch, the initial table and the sample."),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="Explain a trained table instead of the untrained N(0,1) one."
    ),
) -> None:
    """Walk one real batch through the bigram: shapes, lookup, softmax, the loss and its gradient by hand,
    the scatter-add into the table, one AdamW update by hand, sampling."""
    from rich.console import Console

    from bigram.api.functions import explain as run_explain
    from bigram.core.errors import require_positive

    require_positive(batch_size=batch_size, block_size=block_size)
    st = state(ctx)
    info = get_backend(st.backend, ctx)
    ex = run_explain(data, checkpoint, backend=info, batch_size=batch_size, block_size=block_size, seed=seed,
                     device=st.device)
    console = Console(highlight=True)
    render(ex, console if console.is_terminal else Console(highlight=False, color_system=None, soft_wrap=True))


def render(ex, con) -> None:
    """Print an Explanation: rich headings in a terminal, plain text (no escape codes) when piped."""
    from bigram.core.explain_text import header, sections

    con.print(header(ex), markup=False)
    for title, lines in sections(ex):
        if con.is_terminal:
            con.rule(f"[bold]{title}", align="left")
        else:  # plain text for pipes and files: a heading, no box-drawing
            con.print(f"\n{title}\n{'-' * len(title)}", markup=False)
        for line in lines:
            con.print(line, markup=False)
