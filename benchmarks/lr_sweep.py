"""The sweep behind the training defaults: lr, schedule and steps against loss and steps to the optimum.

    python benchmarks/lr_sweep.py [--data tinyshakespeare.txt] [--backend numpy] [--seeds 1337]

Each row is one `bigram --backend B train --data D --lr LR --lr-schedule S
--steps N --eval-interval 50 --json` run, each in its own process.
"steps to opt+0.01" is the first evaluation (every 50 steps) whose exact train
loss is within 0.01 of the closed-form optimum (config.json's
metrics.optimum_train_loss): the quantity `bigram bench` times. Several seeds
give one row each. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# (lr, schedule, steps): the constant rates the lecture and earlier defaults used, then cosine decays.
GRID = [
    (0.001, "constant", 3000), (0.01, "constant", 3000), (0.05, "constant", 3000), (0.1, "constant", 1500),
    (0.05, "cosine", 1500), (0.1, "cosine", 1000), (0.1, "cosine", 1500), (0.1, "cosine", 3000),
    (0.2, "cosine", 1500),
]


def run(argv: list[str]) -> tuple[int, str]:
    """`bigram ARGV` in a fresh process, as a user would type it: (exit code, stdout)."""
    r = subprocess.run([sys.executable, "-m", "bigram", *argv], capture_output=True, text=True)
    return r.returncode, r.stdout


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="corpus (default: Tiny Shakespeare from the cache)")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--seeds", default="1337", help="comma-separated seeds, one row each")
    args = p.parse_args()
    print("| lr | schedule | steps | seed | steps to opt+0.01 | train loss | val loss |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (lr, schedule, steps) in enumerate(GRID):
            for seed in args.seeds.split(","):
                out = Path(tmp) / f"run{i}-{seed}"  # a fresh dir: a run never appends to another's metrics
                argv = ["--backend", args.backend, "train", "--lr", str(lr), "--lr-schedule", schedule,
                        "--steps", str(steps), "--seed", seed, "--eval-interval", "50", "--max-new-tokens", "0",
                        "--out", str(out), "--json"]
                code, stdout = run(argv + (["--data", args.data] if args.data else []))
                if code != 0:
                    print(f"failed: {' '.join(argv)}", file=sys.stderr)
                    return code
                result = json.loads(stdout.strip().splitlines()[-1])
                target = json.loads((out / "config.json").read_text())["metrics"]["optimum_train_loss"] + 0.01
                records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
                hit = next((r["step"] for r in records if r["train_loss"] <= target), None)
                print(f"| {lr:g} | {schedule} | {steps} | {seed} | {hit if hit is not None else 'never'} | "
                      f"{result['train_loss']:.4f} | {result['val_loss']:.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
