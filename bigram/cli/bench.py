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
    quick: bool = typer.Option(False, "--quick",
                               help="Small sizes, a minute or two: checks it all runs (figures not decisive)."),
    data: Optional[Path] = typer.Option(None, "--data", help="UTF-8 text file (default: Tiny Shakespeare, cached)."),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="Interleaved rounds (default 5, 3 with --quick); medians over them."),
    backends: Optional[str] = typer.Option(
        None, "--backends", help="Comma-separated backends to time, or 'all' installed. Default: numpy,torch."),
    measures: Optional[str] = typer.Option(
        None, "--measures", help="Comma-separated groups to run (train, optimum, generate, encode, count, startup, "
        "slope). Default: all."),
    report_to: Optional[Path] = typer.Option(
        None, "--report", metavar="PREFIX", help="Also write the report to PREFIX.json and PREFIX.md."
    ),
    compare_to: Optional[Path] = typer.Option(
        None, "--compare", metavar="OLD.json", help="Compare with a saved report (rerunning its settings); "
        "exit 1 if any figure is worse by more than --threshold."),
    against: Optional[Path] = typer.Option(
        None, "--against", metavar="NEW.json", help="With --compare: compare with this saved report, run nothing."),
    threshold: float = typer.Option(0.10, "--threshold", help="With --compare: how much worse is a regression, "
                                    "as a factor (0.10: 1.1x, a rate lower or seconds and MB higher)."),
    out_old: Optional[Path] = typer.Option(None, "--out", hidden=True, help="Deprecated: --report."),
) -> None:
    """Benchmark training, generation, encoding, counting and start-up against the lecture's code.

    bigram runs on its own default threads, as users run it; `--threads N` (a root option) pins both sides to N.
    The backends timed are those of `--backends`; the root `--backend` does not choose them.
    `--compare OLD.json` exits 1 when a figure regressed, 2 on bad input.
    """
    from bigram.cli.common import renamed

    report_to = renamed(ctx, "--out", out_old, "--report", "report_to")
    from bigram.bench import BenchConfig, run_bench, to_markdown
    from bigram.bench import compare as cmp
    from bigram.core.errors import BigramError

    options = dict(rounds=rounds, backends=backends, measures=measures, threads=state(ctx).threads,
                   data=str(data) if data else None)
    if against is not None and compare_to is None:
        raise BigramError("--against NEW.json needs --compare OLD.json; e.g. bigram bench --compare old.json "
                          "--against new.json")
    if against is not None and report_to is not None:
        raise BigramError("--report saves a run, and with --against nothing runs; drop --report (NEW.json is "
                          "already saved)")
    cmp.check_threshold(threshold)
    if report_to is not None:
        check_report_target(report_to)  # before the run: its minutes are not lost to a path that cannot be written
    old = cmp.load_report(compare_to) if compare_to is not None else None
    if against is not None:
        new = cmp.load_report(against)
    else:
        cfg = _config(old, quick, options) if old is not None else BenchConfig.from_options(quick=quick, **options)
        new = run_bench(cfg)
        if report_to is not None:
            write_report(new, to_markdown(new), report_to)
    if old is None:
        _emit(new if json_out else to_markdown(new))
        return
    rows = cmp.compare(old, new, threshold)
    cmp.check_judged(rows)
    _emit(cmp.to_json(rows, threshold, old, new) if json_out else cmp.to_markdown(rows, threshold, old, new))
    if cmp.regressions(rows):
        print(f"bench: {cmp.summary(rows, threshold)}", file=sys.stderr)
        raise typer.Exit(1)


def _emit(out) -> None:
    """A dict as one JSON object (--json), text as it is."""
    print_json(out) if isinstance(out, dict) else sys.stdout.write(out)


def _config(old: dict, quick: bool, options: dict):
    """OLD's settings (sizes, rounds, backends, measures, threads, corpus), with the options given on top."""
    from bigram.bench import BenchConfig
    from bigram.core.errors import BigramError

    cfg = BenchConfig.from_saved(old.get("meta", {}).get("config", {}))
    if quick and not cfg.quick:
        raise BigramError("--quick: the report to compare with is a full run, so the comparison reruns its "
                          "full sizes; drop --quick, or compare with a report of `bigram bench --quick`")
    return cfg.override(**options)


def write_report(report: dict, md: str, prefix: Path) -> None:
    """PREFIX.json and PREFIX.md: the suffixes are added, never swapped in (run.v2 -> run.v2.json).

    Each is written whole and renamed into place, so a symlink there is replaced, never written through.
    """
    import json

    from bigram.core.safefs import write_file_atomic

    from bigram.core.metrics import json_safe

    check_report_target(prefix)
    text = json.dumps(json_safe(report), indent=1, default=str, allow_nan=False)  # NaN -> null: standard JSON
    write_file_atomic(Path(f"{prefix}.json"), (text + "\n").encode())
    write_file_atomic(Path(f"{prefix}.md"), md.encode())


def check_report_target(prefix: Path) -> None:
    """PREFIX.json and PREFIX.md may be new, or an earlier report: never a link, a directory, or a user's file
    (`--report notes` must not turn notes.md into a table)."""
    from bigram.core.errors import BigramError
    from bigram.core.safefs import holds_a_file, read_nofollow

    prefix = Path(prefix)
    if prefix.name in ("", ".", "..") or prefix.is_dir():  # --report "" wrote ..json; --report out/ wrote out.json
        raise BigramError(f"--report {str(prefix)!r} names a directory, but PREFIX is a file name that .json and .md "
                          f"are added to; e.g. --report {prefix / 'bench'}")
    parent = prefix.parent
    if parent.exists() and not parent.is_dir():
        raise BigramError(f"--report {prefix}: {parent} is not a directory; choose another PREFIX")
    for path in (Path(f"{prefix}.json"), Path(f"{prefix}.md")):
        if holds_a_file(path) and not _is_report(path, read_nofollow(path)):
            raise BigramError(f"--report {prefix}: {path} exists and is not a bench report; bigram bench replaces "
                              "only an earlier report: choose another PREFIX, or delete that file first")


def _is_report(path: Path, raw: bytes) -> bool:
    """The file is one `bigram bench --report` wrote: its JSON report, or the markdown that starts with the run."""
    import json

    from bigram.bench.compare import _not_a_report

    if path.suffix == ".md":
        return raw.startswith(b"Command: `")
    try:
        return _not_a_report(json.loads(raw)) is None
    except (ValueError, RecursionError):
        return False
