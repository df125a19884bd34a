"""`bigram bench`: the benchmarks, side by side with the lecture's code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import print_json, state


@app.command()
def bench(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON object on stdout."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes: seconds, not minutes (figures not decisive)."),
    data: Optional[Path] = typer.Option(None, "--data", help="UTF-8 text file (default: Tiny Shakespeare, cached)."),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="Interleaved rounds (default 5); medians over them."),
    report_to: Optional[Path] = typer.Option(
        None, "--report", metavar="PREFIX", help="Also write the report to PREFIX.json and PREFIX.md."
    ),
    out_old: Optional[Path] = typer.Option(None, "--out", hidden=True, help="Deprecated: --report."),
) -> None:
    """Benchmark training, generation, encoding, counting and start-up against the lecture's code.

    bigram runs on its own default threads, as users run it; `--threads N` (a root option) pins both sides to N.
    """
    from bigram.cli.common import renamed

    report_to = renamed(ctx, "--out", out_old, "--report", "report_to")
    from bigram.bench import BenchConfig, run_bench, to_markdown

    cfg = BenchConfig.from_options(quick=quick, data=str(data) if data else None, threads=state(ctx).threads,
                                   rounds=rounds)
    report = run_bench(cfg)
    md = to_markdown(report)
    if report_to is not None:
        write_report(report, md, report_to)
    if json_out:
        print_json(report)
    else:
        sys.stdout.write(md)


def write_report(report: dict, md: str, prefix: Path) -> None:
    """PREFIX.json and PREFIX.md: the suffixes are added, never swapped in (run.v2 -> run.v2.json).

    Each is written whole and renamed into place, so a symlink there is replaced, never written through.
    """
    import json

    from bigram.core.safefs import write_file_atomic

    write_file_atomic(Path(f"{prefix}.json"), (json.dumps(report, indent=1, default=str) + "\n").encode())
    write_file_atomic(Path(f"{prefix}.md"), md.encode())
