"""torch commands that take no training step never build torch.optim.AdamW.

Building it imports torch._dynamo, which costs about as much as `import torch`
itself; `generate`, `eval`, `fit`, `explain`, `plot` and `vocab` need no
optimizer. The speed is proven in benchmarks/ (the start-up ratio); here: the
optimizer is not built, and building it late changes no number.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from bigram.backends.torch_backend import TorchBackend  # noqa: E402
from bigram.core.backend import STATE_KEYS, WEIGHT_KEY, AdamWConfig  # noqa: E402
from bigram.core.sampling import init_weights  # noqa: E402

TEXT = "the quick brown fox jumps over the lazy dog\nto be or not to be, that is the question\n" * 40

# Runs in a fresh interpreter: counts AdamW constructions and reports whether torch._dynamo was ever imported.
PROBE = r"""
import json, sys
import torch
built = []
init = torch.optim.AdamW.__init__
def counting_init(self, *a, **k):
    built.append(sys.argv[-1])
    init(self, *a, **k)
torch.optim.AdamW.__init__ = counting_init
from bigram.cli.app import main
report = {}
for argv in json.loads(sys.argv[1]):
    before = len(built)
    try:
        main(argv)
    except SystemExit as e:
        assert not e.code, (argv, e.code)
    report[argv[2]] = {"adamw": len(built) - before, "dynamo": "torch._dynamo" in sys.modules}
print("PROBE " + json.dumps(report))
"""


def probe(commands: list[list[str]], cwd) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands)], capture_output=True, text=True,
                         cwd=cwd, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("PROBE "))
    return json.loads(line[6:])


def test_commands_without_a_step_never_build_the_optimizer(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    t = ["-b", "torch"]
    commands = [
        ["-b", "numpy", "train", "--data", "t.txt", "--steps", "3", "--max-new-tokens", "0", "--out", "ck"],
        [*t, "generate", "--checkpoint", "ck", "--max-new-tokens", "50"],
        [*t, "eval", "--checkpoint", "ck", "--data", "t.txt"],
        [*t, "fit", "--data", "t.txt", "--out", "fitted"],
        [*t, "plot", "--checkpoint", "ck", "--out", "p.png"],
        [*t, "vocab", "--checkpoint", "ck"],
        # last: commands that step do build it (the probe can see a construction). explain walks through
        # one real AdamW update; after it torch._dynamo may be loaded, so it comes after the step-free ones.
        [*t, "explain", "--data", "t.txt"],
        [*t, "train", "--data", "t.txt", "--steps", "3", "--max-new-tokens", "0", "--out", "ck2"],
    ]
    report = probe(commands, tmp_path)
    for name in ("generate", "eval", "fit", "plot", "vocab"):
        assert report[name] == {"adamw": 0, "dynamo": False}, (name, report)
    assert report["train"]["adamw"] == 1
    assert report["explain"]["adamw"] == 1  # explain walks through one real AdamW step, so it builds one


def _state(V: int, step: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        WEIGHT_KEY: rng.standard_normal((V, V)).astype(np.float32),
        "adamw.exp_avg": rng.standard_normal((V, V)).astype(np.float32) * 1e-2,
        "adamw.exp_avg_sq": rng.random((V, V)).astype(np.float32) * 1e-4,
        "adamw.step": np.array(step, dtype=np.int64),
    }


@pytest.mark.parametrize("step", [0, 7])
def test_state_set_before_the_optimizer_exists_round_trips(step):
    """Resume, then save without a step: the very same moments and step come back."""
    st = _state(9, step)
    m = TorchBackend.create(init_weights(9, 1), device="cpu")
    m.set_state(st)
    got = m.get_state()
    assert set(got) == set(STATE_KEYS)
    assert int(got["adamw.step"]) == step
    np.testing.assert_array_equal(got[WEIGHT_KEY], st[WEIGHT_KEY])
    for k in ("adamw.exp_avg", "adamw.exp_avg_sq"):
        np.testing.assert_array_equal(got[k], st[k] if step else np.zeros_like(st[k]))


@pytest.mark.parametrize("method", ["counts", "textbook"])
def test_a_late_optimizer_steps_exactly_as_an_early_one(method):
    """set_state and set_lr before the first step give bit-identical steps to an optimizer built up front."""
    V, st = 9, _state(9, 5, seed=3)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, V, (4, 6)), rng.integers(0, V, (4, 6))
    counts = np.zeros((V, V), dtype=np.float32)
    np.add.at(counts, (x.ravel(), y.ravel()), 1)
    models = []
    for early in (True, False):
        m = TorchBackend.create(init_weights(V, 1), device="cpu", optim=AdamWConfig(lr=0.05, weight_decay=0.1))
        if early:
            assert m.optimizer is not None  # built now, before any state or lr is set
        m.set_state(st)
        m.set_lr(0.02)
        for _ in range(3):
            m.train_step_counts(counts) if method == "counts" else m.train_step(x, y)
        models.append(m.get_state())
    for k in STATE_KEYS:
        np.testing.assert_array_equal(models[0][k], models[1][k], err_msg=k)
    assert int(models[0]["adamw.step"]) == 8


def test_make_step_builds_the_optimizer_before_the_first_step(monkeypatch):
    """`train`'s clock starts after make_step: the optimizer's one-time cost stays out of its steps/s."""
    from bigram.core.data import Batcher
    from bigram.core.fast import make_step

    built = []
    init = torch.optim.AdamW.__init__

    def counting_init(self, *a, **k):
        built.append(1)
        init(self, *a, **k)

    monkeypatch.setattr(torch.optim.AdamW, "__init__", counting_init)
    m = TorchBackend.create(init_weights(9, 1), device="cpu")
    assert built == []
    step = make_step(m, Batcher(np.arange(200) % 9, 4, 6, 0))
    assert built == [1] and int(m.get_state()["adamw.step"]) == 0
    step()
    assert built == [1] and int(m.get_state()["adamw.step"]) == 1
