"""Peak RSS of `bigram data prepare` then `bigram train --data DIR` on a large synthetic corpus.

    python benchmarks/memory_prepare_train.py [--mb 200] [--steps 3000] [--backends numpy,torch]

Writes a synthetic UTF-8 corpus of --mb MB in a temp dir, runs each stage as a
subprocess under /usr/bin/time -f %M, which prints that child's peak RSS
(ru_maxrss, KiB). The small `time` process is what forks: a child forked from
this Python process would inherit its RSS as a floor (Linux carries the
pre-exec high-water mark into ru_maxrss), so os.wait4 is only the fallback. For contrast it also trains from the text file directly, the path
that decodes the whole corpus in memory, and measures each backend's floor:
the same train on a 30 KB corpus (torch alone is ~220 MiB after `import
torch`, ~300 MiB once torch.optim.AdamW is built, whatever the data).
Stages run with OMP_NUM_THREADS=1, as torchrun runs each rank.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ALPHABET = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\n", dtype=np.uint8)


def write_corpus(path: Path, mb: int, seed: int = 0) -> None:
    """mb MiB of text drawn from a skewed distribution over 61 ASCII characters, 1 MiB at a time."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(len(ALPHABET)))
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(rng.choice(ALPHABET, size=1 << 20, p=p).tobytes())


def peak_rss_mb(cmd: list[str], tmp: Path) -> tuple[float, float]:
    """Run cmd; return (its peak RSS in MiB, wall seconds)."""
    timer = Path("/usr/bin/time")
    out = tmp / "maxrss.txt"
    if timer.exists():
        cmd = [str(timer), "-f", "%M", "-o", str(out)] + cmd
    t0 = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err.decode(errors='replace')}")
    kib = int(out.read_text().split()[-1]) if timer.exists() else usage.ru_maxrss
    return kib / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--backends", default="numpy,torch")
    ap.add_argument("--skip-text", action="store_true", help="skip the train-from-text contrast")
    args = ap.parse_args()
    bigram = [sys.executable, "-m", "bigram"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.txt"
        write_corpus(corpus, args.mb)
        with open(corpus, "rb") as f, open(tmp / "small.txt", "wb") as g:
            g.write(f.read(30_000))
        train_args = ["--steps", str(args.steps), "--max-new-tokens", "0", "--out", str(tmp / "ck")]
        stages = [("prepare", bigram + ["data", "prepare", str(corpus), "--out", str(tmp / "d")])]
        for b in args.backends.split(","):
            run = bigram + ["--backend", b, "--device", "cpu", "train", "--data"]
            stages.append((f"floor: train on 30 KB text ({b})", run + [str(tmp / "small.txt")] + train_args))
            stages.append((f"train --data DIR ({b})", run + [str(tmp / "d")] + train_args))
        if not args.skip_text:
            stages.append(("train --data FILE (numpy, text path)", bigram + ["--backend", "numpy", "train",
                                                                             "--data", str(corpus)] + train_args))
        for name, cmd in stages:
            rss, wall = peak_rss_mb(cmd, tmp)
            rows.append({"stage": name, "peak_rss_mb": round(rss, 1), "wall_s": round(wall, 1)})
            print(f"{name:40s} peak RSS {rss:8.1f} MiB   {wall:6.1f} s", flush=True)
    print(json.dumps({"corpus_mb": args.mb, "steps": args.steps, "stages": rows}))


if __name__ == "__main__":
    main()
