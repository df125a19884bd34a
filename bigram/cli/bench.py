"""`bigram bench`: the benchmarks, side by side with the lecture's code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import print_json


@app.command()
def bench(
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON object on stdout."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes: seconds, not minutes (figures not decisive)."),
    data: Optional[Path] = typer.Option(None, "--data", help="UTF-8 text file (default: Tiny Shakespeare, cached)."),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="Interleaved rounds (default 5); medians over them."),
    threads: int = typer.Option(1, "--threads", help="torch intra-op threads, the same for both sides."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write OUT.json and OUT.md."),
) -> None:
    """Benchmark training, generation, encoding, counting and start-up against the lecture's code."""
    from bigram.bench import BenchConfig, run_bench, to_markdown
    cfg = BenchConfig.from_options(quick=quick, data=str(data) if data else None, threads=threads, rounds=rounds)
    report = run_bench(cfg)
    md = to_markdown(report)
    if out is not None:
        write_report(report, md, out)
    if json_out:
        print_json(report)
    else:
        sys.stdout.write(md)


def write_report(report: dict, md: str, out: Path) -> None:
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(md, encoding="utf-8")
