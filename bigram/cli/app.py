"""`bigram [--backend NAME] [--device DEV] COMMAND`.

Heavy imports (numpy-heavy core, torch) happen inside commands, so
`bigram --help` stays fast and never loads torch.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from bigram import __version__

app = typer.Typer(
    name="bigram",
    help="Train, sample, cross-check and benchmark the character-level bigram language model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class State:
    """Options given before the command, shared with every command."""

    def __init__(self, backend: str, device: str):
        self.backend = backend
        self.device = device


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bigram {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    backend: str = typer.Option(
        os.environ.get("BIGRAM_BACKEND", "torch"), "--backend", "-b", help="Backend to run (see `bigram backends`)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (auto = cuda when available)."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = State(backend, device)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: a BigramError becomes one line on stderr and its exit code (2).

    Usage errors (an unknown option, a non-integer --steps) are typer's own,
    also exit code 2.
    """
    from bigram.core.errors import BigramError

    try:
        app(args=argv, prog_name="bigram")
    except BigramError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


# Commands live in their own modules and register themselves on `app`.
from bigram.cli import commands  # noqa: E402,F401

from bigram.cli import bench  # noqa: E402,F401
