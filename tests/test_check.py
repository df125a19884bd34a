"""`bigram check` and its engine, bigram/core/check.py: it passes for correct backends and fails for broken ones."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from plugin_helpers import run_cli

from bigram.backends import numpy_backend
from bigram.backends.numpy_backend import NumpyBackend
from bigram.core.check import TOLERANCES, CheckConfig, diff, run_check
from bigram.core.data import Corpus

EVERY_ROW = set(TOLERANCES["float64"])


def cli(capsys, *args):
    """(returncode, stdout, stderr) of the CLI run in this process."""
    return SimpleNamespace(**dict(zip(("returncode", "stdout", "stderr"), run_cli(capsys, *args))))


# ----------------------------------------------------------------------------
# the difference measure


def test_diff_is_relative_to_the_reference_scale():
    assert diff([1.0, 2.0], [1.0, 2.0]) == (0.0, 0.0)
    assert diff([1.0, 4.5], [1.0, 4.0]) == (0.5, 0.125)
    assert diff(3, 3) == (0.0, 0.0)


def test_diff_counts_shape_and_nan_mismatches_as_infinite():
    assert diff(np.zeros(3), np.zeros(4)) == (np.inf, np.inf)
    assert diff([np.nan, 1.0], [0.0, 1.0]) == (np.inf, np.inf)
    assert diff([0.0, 1.0], [np.inf, 1.0]) == (np.inf, np.inf)
    assert diff([1e-9], [0.0]) == (1e-9, np.inf)  # any difference from an all-zero reference fails


# ----------------------------------------------------------------------------
# the command, on real data (the acceptance runs)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_passes_against_numpy(capsys, shakespeare_path, dtype):
    r = cli(capsys, "check", "--backends", "numpy,torch", "--dtype", dtype, "--data", str(shakespeare_path), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["dtype"] == dtype and report["steps"] == 10
    [c] = report["comparisons"]
    assert c["backend"] == "torch" and c["reference"] == "numpy"
    assert {row["tensor"] for row in c["rows"]} == EVERY_ROW
    for row in c["rows"]:
        assert row["ok"] and row["max_rel_diff"] <= row["tolerance"]


def test_table_output(capsys, shakespeare_path):
    r = cli(capsys, "check", "--backends", "numpy,torch", "--data", str(shakespeare_path), "--steps", "2")
    assert r.returncode == 0, r.stderr
    for word in ("tensor", "max abs diff", "max rel diff", "tolerance", "torch (cpu) vs numpy", "largest abs diff"):
        assert word in r.stdout
    assert "FAIL" not in r.stdout
    assert r.stdout.count(" OK ") == len(EVERY_ROW)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backends", "numpy"], "names 1 backend"),
        (["--backends", "numpy,numpy"], "names a backend twice"),
        (["--backends", "numpy,nope"], "unknown backend 'nope'"),
        (["--dtype", "float16"], "unknown --dtype 'float16'"),
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--data", "/nonexistent/file.txt"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    r = cli(capsys, "check", *args)
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


# ----------------------------------------------------------------------------
# the check fails: each classic bug, planted in the NumPy reference


def buffered_embedding_backward(dout, idx, V):
    """The bug: dW[idx] += dout is a buffered scatter, so a repeated token keeps one contribution."""
    dW = np.zeros((V, dout.shape[-1]), dtype=dout.dtype)
    dW[idx.reshape(-1)] += dout.reshape(-1, dout.shape[-1])
    return dW


def adamw_step_without_bias_correction(self, p, g):
    c = self.cfg
    self.t += 1
    p *= 1 - c.lr * c.weight_decay
    self.m += (1 - c.beta1) * (g - self.m)
    self.v = c.beta2 * self.v + (1 - c.beta2) * g * g
    p -= c.lr * self.m / (np.sqrt(self.v) + c.eps)


def softmax_without_max_shift(logits):
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


MUTATIONS = {
    "no scatter sum": ("embedding_backward", buffered_embedding_backward, {"dW", "dW (huge logits)"}),
    "no bias correction": ("AdamW.step", adamw_step_without_bias_correction, {"weights", "loss trajectory"}),
    "softmax without max shift": ("softmax_forward", softmax_without_max_shift, {"dW (huge logits)"}),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_check_fails_for_each_planted_bug(monkeypatch, shakespeare, mutation):
    from bigram.backends.torch_backend import TorchBackend

    target, bad, must_fail = MUTATIONS[mutation]
    owner, attr = (numpy_backend.AdamW, "step") if target == "AdamW.step" else (numpy_backend, target)
    for dtype in ("float64", "float32"):
        [ok] = run_check([("numpy", NumpyBackend), ("torch", TorchBackend)], shakespeare, CheckConfig(dtype=dtype, steps=3))
        assert ok.ok
        with monkeypatch.context() as m:
            m.setattr(owner, attr, bad)
            [c] = run_check([("numpy", NumpyBackend), ("torch", TorchBackend)], shakespeare,
                            CheckConfig(dtype=dtype, steps=3))
        failed = {r.tensor for r in c.rows if not r.ok}
        assert must_fail <= failed, (dtype, failed)
        assert "logits" not in failed  # the lookup itself is untouched


def test_check_runs_without_grads_method(shakespeare):
    """A backend with only the required methods is still checked (dW, not dlogits)."""

    class Plain:
        def __init__(self, model):
            self._m = model

        def __getattr__(self, name):
            if name == "grads":
                raise AttributeError(name)
            return getattr(self._m, name)

    class PlainBackend(NumpyBackend):
        @classmethod
        def create(cls, weights, **kw):
            return Plain(NumpyBackend.create(weights, **kw))

    small = Corpus.from_text(shakespeare.tokenizer.decode(shakespeare.train[:5000]))
    [c] = run_check([("numpy", NumpyBackend), ("plain", PlainBackend)], small, CheckConfig(steps=2))
    names = {r.tensor for r in c.rows}
    assert c.ok and "dW" in names and "dlogits" not in names
