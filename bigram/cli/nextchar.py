"""`bigram next`: the distribution over the next character after a prompt, as a sorted table."""

from __future__ import annotations

from pathlib import Path

import typer

from bigram.cli.app import app
from bigram.cli.common import get_backend, print_json, state


@app.command("next")
def next_command(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(Path("out"), "--checkpoint", help="Checkpoint directory."),
    prompt: str = typer.Option(..., "--prompt", help="Text whose next character to predict (only its last one counts)."),
    top_k: int = typer.Option(10, "--top-k", help="How many of the most likely characters to show."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
) -> None:
    """P(next character | the prompt's last character), most likely first, from the backend's softmax.

    A bigram reads only the last character, so this is one row of the table:
    e.g. `--prompt q` shows why 'u' nearly always follows 'q'. Characters are
    shown readably: \\n for a newline, ␣ for a space, escapes for the invisible.
    """
    from bigram.api.functions import load

    st = state(ctx)
    model = load(checkpoint, get_backend(st.backend, ctx), device=st.device)
    table = model.next_probs(prompt, top_k=top_k)
    if json_out:
        print_json(table.to_json())
    else:
        print(table)
