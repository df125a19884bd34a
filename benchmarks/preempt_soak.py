"""Kill soak: a 2-rank gloo job under torchrun --max-restarts, SIGKILLed many times, must end on the bits
of the same job run without interruption.

    python benchmarks/preempt_soak.py [--kills 20] [--steps 2000] [--save-interval 40] [--seed 1] [--data FILE]

Runs the uninterrupted reference once, then the same command with `--resume auto` under
`python -m torch.distributed.run --max-restarts KILLS+2`, killing one worker `--kills` times
(alternately a random rank mid-training and a random rank while rank 0 is inside a save;
tests/dist_kill.py). Prints the kills, the restarts torchrun made, the largest difference of
any weight / AdamW moment / step against the reference (must be 0) and whether the
metrics and both ranks' batch streams are equal too. Exit status 0 only if all are.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dist_kill import env, run_with_kills, torchrun  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--save-interval", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default=None, help="text file (default: the first 30 KB of the cached Tiny Shakespeare)")
    args = p.parse_args(argv)
    import numpy as np
    from safetensors.numpy import load

    with tempfile.TemporaryDirectory(prefix="bigram-soak-") as tmp:
        tmp = Path(tmp)
        data = tmp / "small.txt"
        if args.data:
            data.write_bytes(Path(args.data).read_bytes())
        else:
            from bigram.core.download import tiny_shakespeare_path

            data.write_bytes(tiny_shakespeare_path().read_bytes()[:30_000])
        train = ["--backend", "torch", "--device", "cpu", "train", "--distributed", "--data", str(data),
                 "--batch-size", "8", "--eval-interval", "200", "--max-new-tokens", "0", "--steps", str(args.steps),
                 "--save-interval", str(args.save_interval)]
        ref = subprocess.run(torchrun() + ["-m", "bigram", *train, "--out", str(tmp / "ref")], cwd=tmp, env=env(),
                             capture_output=True, text=True)
        if ref.returncode:
            print(ref.stderr[-3000:], file=sys.stderr)
            return 1
        t0 = time.monotonic()
        report = run_with_kills(train, tmp / "killed", kills=args.kills, seed=args.seed, cwd=tmp,
                                timeout=60.0 * args.kills)
        wall = time.monotonic() - t0
        if report.returncode != 0:
            print(report.log[-3000:], file=sys.stderr)
        ta = {f"{n}:{k}": a for n in ("model.safetensors", "optimizer.safetensors")
              for k, a in load((tmp / "ref" / n).read_bytes()).items()}
        tb = {f"{n}:{k}": a for n in ("model.safetensors", "optimizer.safetensors")
              for k, a in load((tmp / "killed" / n).read_bytes()).items()} if report.returncode == 0 else {}
        diff = max((float(np.abs(ta[k].astype(float) - tb[k].astype(float)).max()) for k in ta), default=None) \
            if tb.keys() == ta.keys() else None
        same = tb.keys() == ta.keys() and all(ta[k].tobytes() == tb[k].tobytes() for k in ta)

        def side(d: Path) -> tuple:
            cfg = json.loads((d / "config.json").read_text())
            rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
            return cfg["rank_batcher_states"], [(r["step"], r["train_loss"], r["val_loss"]) for r in rows]

        rest_same = report.returncode == 0 and side(tmp / "ref") == side(tmp / "killed")
        kinds = [k["kind"] for k in report.kills]
        result = {"kills": len(report.kills), "mid_step": kinds.count("step"), "mid_save": kinds.count("save"),
                  "ranks_killed": "".join(str(k["rank"]) for k in report.kills), "restarts": report.restarts,
                  "torchrun_exit": report.returncode, "max_abs_diff": diff, "bit_identical": same,
                  "metrics_and_streams_equal": rest_same, "steps": args.steps, "save_interval": args.save_interval,
                  "wall_s": round(wall, 1)}
        print(json.dumps(result, indent=2))
        ok = same and rest_same and len(report.kills) == args.kills and report.restarts == args.kills
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
