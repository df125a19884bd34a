"""`bigram data prepare FILE --out DIR`: stream a corpus of any size into token files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import print_json
from bigram.cli.options import val_data_option, val_fraction_option

data_app = typer.Typer(help="Prepare corpora as memory-mapped token files.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("prepare")
def prepare_cmd(
    file: Path = typer.Argument(..., help="UTF-8 text file, any size (it is streamed, never loaded whole)."),
    out: Path = typer.Option(..., "--out", help="Directory for train.bin, val.bin and vocab.json."),
    tokenizer: str = typer.Option("char", "--tokenizer", help="char (one id per distinct character) or byte (V=256)."),
    json_out: bool = typer.Option(False, "--json", help="Print vocab.json's summary as one JSON object on stdout."),
    val_fraction: Optional[float] = val_fraction_option(prepared=False),
    val_data: Optional[Path] = val_data_option(),
) -> None:
    """Tokenize FILE into DIR/train.bin (first 90%, or all with --val-data) and DIR/val.bin, for `train --data DIR`."""
    from bigram.core.prepare import prepare

    size = sum(f.stat().st_size for f in (file, val_data) if f is not None and f.is_file())
    with _bar(2 * size) as advance:  # two passes: vocabulary scan, then encoding
        meta = prepare(file, out, kind=tokenizer, on_bytes=advance, val_fraction=val_fraction, val_data=val_data)
    summary = {k: v for k, v in meta.items() if k != "token_counts"}
    val = f"{meta['val_tokens']:,} val tokens" + (f" from {val_data}" if val_data is not None else "")
    if meta["val_fraction"] == 0 and val_data is None:
        val = "no val split"
    print(f"{out}: vocab {meta['vocab_size']} ({meta['dtype']}), {meta['train_tokens']:,} train / {val}, "
          f"sha256 {meta['sha256'][:12]}", file=sys.stderr)
    if json_out:
        print_json(summary)


class _bar:
    """A rich progress bar over bytes on stderr (silent when stderr is not a terminal)."""

    def __init__(self, total: int):
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("prepare"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
            console=console, transient=True, disable=not console.is_terminal,
        )
        self.task = self.progress.add_task("prepare", total=total)

    def __enter__(self):
        self.progress.__enter__()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)
