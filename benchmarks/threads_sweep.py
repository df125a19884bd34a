"""Where a second torch thread starts to pay: one training step and one evaluation per table size.

    python benchmarks/threads_sweep.py [--sizes 65,128,256,362,512,724,1024,2048] [--threads 1,2] [--rounds 7]

For each vocabulary size V and thread count, the median time of the torch
backend's counts step (`train_step_counts`, what `bigram train` runs) and of
its exact evaluation (`eval_counts`), over interleaved rounds. The default of
bigram.core.threads (one thread per ELEMENTS_PER_THREAD table entries) is
read off this table; the last column says what it picks for each size.
"""

from __future__ import annotations

import argparse
import statistics
import time


def time_per_call(fn, budget_s: float = 0.2) -> float:
    """Seconds per call of fn, from enough calls to fill about budget_s."""
    fn()
    n, t = 1, 0.0
    while t < budget_s:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - start
        if t < budget_s:
            n *= 2
    return t / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="65,128,256,362,512,724,1024,2048")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)

    import numpy as np

    from bigram.backends.torch_backend import TorchBackend
    from bigram.core import threads
    from bigram.core.sampling import init_weights

    sizes = [int(v) for v in args.sizes.split(",")]
    counts = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(0)
    cases = {}
    for V in sizes:
        c = np.zeros((V, V), dtype=np.float32)
        np.add.at(c, (rng.integers(0, V, 256), rng.integers(0, V, 256)), 1)  # a B=32, T=8 batch
        for t in counts:
            threads.request(t)
            cases[V, t] = (TorchBackend.create(init_weights(V, 1), device="cpu"), c)
    threads.request(None)
    step = {k: [] for k in cases}
    ev = {k: [] for k in cases}
    for r in range(args.rounds):
        for (V, t), (model, c) in (cases.items() if r % 2 == 0 else reversed(cases.items())):
            import torch

            torch.set_num_threads(t)
            step[V, t].append(time_per_call(lambda: model.train_step_counts(c)))
            ev[V, t].append(time_per_call(lambda: model.eval_counts(c)))
    print("| V | " + " | ".join(f"step ms, {t} thr" for t in counts) + " | "
          + " | ".join(f"eval ms, {t} thr" for t in counts) + " | default threads |")
    print("|---:|" + "---:|" * (2 * len(counts) + 1))
    for V in sizes:
        s = [f"{statistics.median(step[V, t]) * 1e3:.3f}" for t in counts]
        e = [f"{statistics.median(ev[V, t]) * 1e3:.3f}" for t in counts]
        print(f"| {V} | " + " | ".join(s + e) + f" | {threads.for_table(V)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
