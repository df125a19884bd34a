"""`bigram [--backend NAME] [--device DEV] COMMAND`; the root's options also work after COMMAND.

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
    add_completion=True,  # --install-completion / --show-completion, typer's way
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class State:
    """The root's options (given before the command or after it), shared with every command."""

    def __init__(self, backend: str, device: str, threads: int | None = None):
        self.backend = backend
        self.device = device
        self.threads = threads  # --threads; None: each backend chooses by the work (bigram.core.threads)
        self.registry = None  # the loaded plugins, once a command has asked for them (cli/common.get_backend)


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
    threads: Optional[int] = typer.Option(
        None, "--threads", help="Threads for the backend's math (torch's intra-op threads). "
        "Default: by the work, 1 up to a 1448x1448 table, more for larger ones (at most the CPUs available)."
    ),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    from bigram.core import threads as thread_count

    thread_count.request(threads)  # every command sets it: an in-process run never inherits the last one's
    ctx.obj = State(backend, device, threads)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every failure the user can cause is one line on stderr.

    A BigramError prints its message and exits with its code (2; 130/143 for
    an interrupted run). typer's usage errors (an unknown option, `--steps
    abc`) are made one line too, still exit code 2; `--help` and `--version`
    exit 0 as usual. Output never raises either (cli/streams.py): what the
    console cannot encode is escaped, a closed or broken stdout is survived.
    """
    from bigram.cli.streams import guarded

    with guarded():
        _main(argv)


def _main(argv: list[str] | None) -> None:
    from bigram.core.errors import BigramError

    try:
        rv = command().main(args=argv, prog_name="bigram", standalone_mode=False)
    except BigramError as e:
        print(f"{getattr(e, 'prefix', 'error')}: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.TyperException as e:
        sys.exit(_usage_error(e))
    except typer.Abort:
        print("error: aborted (end of input); run the command again", file=sys.stderr)
        sys.exit(1)
    except MemoryError:
        print("error: out of memory; lower --batch-size or --block-size, or use a smaller corpus", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # the disk or the OS refused: full disk, permissions
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}; check the path, its permissions and free space", file=sys.stderr)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)  # typer returns Exit's code (--help, --version, Ctrl-C: 130)


def command():
    """The click command behind `app`, with the root's options accepted after every command too."""
    from typer.main import get_command

    from bigram.cli.rootopts import share_root_options

    cmd = get_command(app)
    share_root_options(cmd)
    return cmd


def _usage_error(e: Exception) -> int:
    """`Error: Invalid value for '--steps'...` plus usage, as one line naming the help to read."""
    if type(e).__name__ == "NoArgsIsHelpError":  # plain `bigram`: the help is the answer
        e.show()
        return e.exit_code
    message = " ".join(e.format_message().split()).rstrip(".")
    ctx = getattr(e, "ctx", None)
    hint = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
    print(f"error: {message}{hint}", file=sys.stderr)
    return getattr(e, "exit_code", 2)


# Commands live in their own modules and register themselves on `app`.
from bigram.cli import commands  # noqa: E402,F401
from bigram.cli import evaluate  # noqa: E402,F401
from bigram.cli import explain  # noqa: E402,F401
from bigram.cli import plot  # noqa: E402,F401
from bigram.cli import data_cmd  # noqa: E402,F401  (bigram data prepare)
from bigram.cli import check as _check  # noqa: E402,F401
from bigram.cli import bench  # noqa: E402,F401
from bigram.cli import nextchar  # noqa: E402,F401  (bigram next)
