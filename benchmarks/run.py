"""Run the benchmarks and keep the results.

    python benchmarks/run.py [--quick] [--data FILE] [--rounds N] [--threads N] [--backends LIST]
                             [--measures LIST] [--commit]

Writes benchmarks/results/bench-<UTC time>.json and .md (gitignored, for ad-hoc
runs); --commit also writes benchmarks/RESULTS.json and RESULTS.md, the run the
docs quote. The same engine runs as `bigram bench` (bigram/bench/).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes: seconds, not minutes")
    p.add_argument("--data", help="corpus (default: Tiny Shakespeare from the cache)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 5)")
    p.add_argument("--threads", type=int, help="torch threads for both sides (default: bigram's own choice, "
                   "as users run it; the lecture on 1)")
    p.add_argument("--backends", help="comma-separated backends, or 'all' installed (default: numpy,torch)")
    p.add_argument("--measures", help="comma-separated measure groups (default: all)")
    p.add_argument("--commit", action="store_true", help="also write benchmarks/RESULTS.{json,md}")
    args = p.parse_args(argv)

    from bigram.bench import BenchConfig, run_bench, to_markdown
    from bigram.cli.bench import check_report_target, write_report

    from bigram.core.errors import BigramError

    try:
        cfg = BenchConfig.from_options(quick=args.quick, data=args.data, threads=args.threads, rounds=args.rounds,
                                       backends=args.backends, measures=args.measures)
        if args.commit:
            check_report_target(HERE / "RESULTS")  # before the run, not after its minutes
        report = run_bench(cfg)
        report["meta"]["command"] = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
        md = to_markdown(report)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        write_report(report, md, HERE / "results" / f"bench-{stamp}")
        if args.commit:
            write_report(report, md, HERE / "RESULTS")
    except BigramError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
