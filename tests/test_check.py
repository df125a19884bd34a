"""`bigram check` and its engine, bigram/core/check.py: it passes for correct backends and fails for broken ones."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from plugin_helpers import run_cli

from bigram.backends import numpy_backend
from bigram.backends.numpy_backend import NumpyBackend
from backends import CANDIDATES, params, require_dtype

from bigram.core.check import (OPTIONAL, PATH_TOLERANCES, TOLERANCES, CheckConfig, diff, fmt_tol, run_check,
                               tolerances)
from bigram.core.data import Corpus

EVERY_ROW = set(TOLERANCES["float64"])
PATH_ROWS = set(PATH_TOLERANCES["float64"])


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
# the command, on real data (the acceptance runs), for every installed backend


def wide_unicode_text(n: int = 40_000, seed: int = 0) -> str:
    """A Markov text over 305 characters (V > 256: ids need uint16) from five scripts, astral emoji included.

    Each character has a few likely successors, so the bigram table has
    structure to learn; every character occurs in the train split.
    """
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                + [chr(c) for c in range(0x391, 0x3CA) if c != 0x3A2]  # Greek, 56
                + [chr(c) for c in range(0x410, 0x450)]  # Cyrillic, 64
                + [chr(c) for c in range(0x4E00, 0x4E00 + 93)]  # CJK, 93
                + [chr(c) for c in range(0x1F600, 0x1F600 + 40)])  # emoji, outside the BMP
    rng = np.random.default_rng(seed)
    V = len(alphabet)
    succ = rng.integers(0, V, (V, 4))  # (V,4) likely successors of each character
    ids = [0]
    for u in rng.random(n):
        ids.append(int(succ[ids[-1], int(u * 4)]) if u < 0.9 else int(rng.integers(V)))
    return "".join(alphabet[i] for i in range(V)) + "".join(alphabet[i] for i in ids)


@pytest.fixture(scope="module")
def wide_corpus_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("wide") / "wide.txt"
    path.write_text(wide_unicode_text(), encoding="utf-8")
    return path


def assert_passes(r, name: str, dtype: str):
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["dtype"] == dtype and report["lr_schedule"] == "cosine"
    [c] = report["comparisons"]
    assert c["backend"] == name and c["reference"] == "numpy"
    assert {row["tensor"] for row in c["rows"]} >= EVERY_ROW - OPTIONAL
    assert [p["backend"] for p in report["paths"]] == ["numpy", name]
    for p in report["paths"]:
        assert {row["tensor"] for row in p["rows"]} == PATH_ROWS
    for row in [row for c in report["comparisons"] + report["paths"] for row in c["rows"]]:
        assert row["ok"] and row["max_rel_diff"] <= row["tolerance"], row
    return report


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", params(CANDIDATES))
def test_every_backend_passes_against_numpy(capsys, shakespeare_path, name, dtype):
    require_dtype(name, dtype)
    r = cli(capsys, "check", "--backends", f"numpy,{name}", "--dtype", dtype, "--data", str(shakespeare_path), "--json")
    report = assert_passes(r, name, dtype)
    assert report["steps"] == 10 and report["batch_size"] == 32


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", params(CANDIDATES))
def test_check_passes_on_a_wide_unicode_corpus(capsys, wide_corpus_path, name, dtype):
    """V = 305 > 256, characters from five scripts, emoji outside the BMP: still every row within tolerance."""
    require_dtype(name, dtype)
    r = cli(capsys, "check", "--backends", f"numpy,{name}", "--dtype", dtype, "--data", str(wide_corpus_path), "--json")
    assert_passes(r, name, dtype)
    assert Corpus.load(wide_corpus_path).tokenizer.vocab_size == 305


def test_table_output(capsys, shakespeare_path):
    r = cli(capsys, "check", "--backends", "numpy,torch", "--data", str(shakespeare_path), "--steps", "2")
    assert r.returncode == 0, r.stderr
    for words in ("tensor", "max abs diff", "max rel diff", "tolerance", "closer", "torch (cpu) vs numpy",
                  "numpy (cpu): counts path vs textbook path", "largest abs diff", "cosine lr 0.1 -> 0.01"):
        assert words in " ".join(r.stdout.split()), words
    assert "FAIL" not in r.stdout
    assert r.stdout.count(" OK ") == len(EVERY_ROW) + 2 * len(PATH_ROWS)


def test_table_shows_each_tolerance_to_three_digits(capsys, shakespeare_path):
    """The loss rows' float32 tolerance, 1e-6 + 255 eps/2 = 1.62e-05, read '2e-05' (above itself) in the table."""
    r = cli(capsys, "check", "--backends", "numpy,torch", "--data", str(shakespeare_path), "--steps", "2")
    assert r.returncode == 0, r.stderr
    want = tolerances(TOLERANCES["float32"], CheckConfig(dtype="float32"))  # 32x8: the check's default batch
    for name in ("loss", "dW", "dlogits"):
        row = next(line for line in r.stdout.splitlines() if line.split("│")[1:2] == [f" {name} ".ljust(15)])
        shown = row.split("│")[4].strip()
        assert float(shown) == pytest.approx(want[name], rel=5e-3), (name, shown)
    cells = {cell.strip() for line in r.stdout.splitlines() for cell in line.split("│")}
    assert fmt_tol(want["loss"]) == "1.62e-05" and "1.62e-05" in cells and "2e-05" not in cells
    assert [fmt_tol(t) for t in (1e-4, 1e-3, 2.51992e-05, 0.0)] == ["1e-04", "1e-03", "2.52e-05", "0"]


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


def check_numpy_torch(dtype, corpus, steps=3):
    from bigram.backends.torch_backend import TorchBackend

    return run_check([("numpy", NumpyBackend), ("torch", TorchBackend)], corpus, CheckConfig(dtype=dtype, steps=steps))


def failing(report) -> dict[str, dict[str, object]]:
    """{'torch vs numpy' or 'numpy paths': {tensor: closer}} for every row out of tolerance."""
    out = {}
    for c in report.comparisons + report.paths:
        key = f"{c.backend} paths" if c.kind == "paths" else f"{c.backend} vs {c.reference}"
        rows = {r.tensor: r.closer for r in c.rows if not r.ok}
        if rows:
            out[key] = rows
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_check_fails_for_each_planted_bug(monkeypatch, shakespeare, mutation):
    target, bad, must_fail = MUTATIONS[mutation]
    owner, attr = (numpy_backend.AdamW, "step") if target == "AdamW.step" else (numpy_backend, target)
    for dtype in ("float64", "float32"):
        assert check_numpy_torch(dtype, shakespeare).ok
        with monkeypatch.context() as m:
            m.setattr(owner, attr, bad)
            report = check_numpy_torch(dtype, shakespeare)
        failed = failing(report)["torch vs numpy"]
        assert must_fail <= set(failed), (dtype, failed)
        assert "logits" not in failed  # the lookup itself is untouched
        # The reference's textbook math is wrong in float64 too, so the float64 runs
        # disagree: the check says so instead of blaming the backend nearer the bug.
        assert all(closer is None for closer in failed.values()), failed


# Bugs in the paths every default run takes, which only a textbook check misses:
# each is a one-line change to the source, planted by rebuilding the module's
# class from the changed text (never by editing the file).
FAST_PATH_BUGS = {
    "step_inplace: v scaled by scale, not scale^2": (
        "bigram.backends.numpy_backend", "AdamW", "g *= (1 - c.beta2) * scale * scale", "g *= (1 - c.beta2) * scale"),
    "step_inplace: weight decay dropped": (
        "bigram.backends.numpy_backend", "AdamW",
        "p *= 1 - lr * c.weight_decay\n        m *= c.beta1", "m *= c.beta1"),
    "step_inplace: beta2 correction unrooted": (
        "bigram.backends.numpy_backend", "AdamW",
        "bias2_sqrt = (1 - c.beta2**self.t) ** 0.5\n        p *= 1 - lr",
        "bias2_sqrt = (1 - c.beta2**self.t)\n        p *= 1 - lr"),
    "torch fused AdamW: weight decay 0": (
        "bigram.backends.torch_model", "TorchBigram", 'weight_decay=g["weight_decay"]', "weight_decay=0"),
    "counts transposed": (
        "bigram.core.fast", "CountsStream", "[(c, r, self.N) for c, r", "[(c.T, r, self.N) for c, r"),
    "wrong row sums": (
        "bigram.core.fast", "CountsStream",
        "rows = flat.reshape(S * self.V, self.V) @ np.ones(self.V, dtype=self.dtype)",
        "rows = counts.sum(axis=1).reshape(S * self.V)"),
    "torch model in float64 under float32": (
        "bigram.backends.torch_model", "TorchBigram", "getattr(torch, dtype))", "torch.float64)"),
}

# What must fail, as failing() reports it, and who the float64 recomputation must blame.
ANY = "any"  # both values are wrong: which is nearer the recomputation says nothing
NUMPY_COUNTS_WRONG = {"torch vs numpy": {"counts: weights": "torch"}, "numpy paths": {"weights": "textbook path"}}
EXPECTED = {
    "step_inplace: v scaled by scale, not scale^2": NUMPY_COUNTS_WRONG,
    "step_inplace: weight decay dropped": NUMPY_COUNTS_WRONG,
    "step_inplace: beta2 correction unrooted": NUMPY_COUNTS_WRONG,
    "torch fused AdamW: weight decay 0": {"torch vs numpy": {"counts: weights": "numpy"},
                                          "torch paths": {"weights": "textbook path"}},
    # core's counts are wrong for every backend: each disagrees with its own textbook path (and
    # numpy, which reads the untransposed row sums, with torch)
    "counts transposed": {"torch vs numpy": {"counts: weights": ANY},
                          "numpy paths": {"loss trajectory": "textbook path", "weights": "textbook path"},
                          "torch paths": {"loss trajectory": "textbook path", "weights": "textbook path"}},
    "wrong row sums": NUMPY_COUNTS_WRONG,  # torch's counts step does not read row sums
    "torch model in float64 under float32": {"torch paths": {"dtype": None}},
}


def plant(monkeypatch, module_name: str, attr: str, old: str, new: str) -> None:
    """Replace module.attr by the same definition compiled from the module's source with `old` -> `new`."""
    import importlib
    import inspect

    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    assert source.count(old) == 1, f"{old!r} is not a single line of {module_name}"
    namespace = {"__name__": module_name}
    exec(compile(source.replace(old, new), module.__file__, "exec"), namespace)
    monkeypatch.setattr(module, attr, namespace[attr])


@pytest.mark.parametrize("bug", FAST_PATH_BUGS)
def test_check_catches_bugs_in_what_training_runs(monkeypatch, shakespeare, bug):
    pytest.importorskip("torch")
    dtypes = ["float32"] if "float64" in bug else ["float64", "float32"]  # a float64 model is right in float64
    for dtype in dtypes:
        with monkeypatch.context() as m:
            plant(m, *FAST_PATH_BUGS[bug])
            got = failing(check_numpy_torch(dtype, shakespeare))
        assert set(got) == set(EXPECTED[bug]), (dtype, got)
        for where, rows in EXPECTED[bug].items():
            for tensor, closer in rows.items():
                assert tensor in got[where], (dtype, where, got[where])
                assert closer == ANY or got[where][tensor] == closer, (dtype, where, tensor, got[where][tensor])
        assert all("logits" != t for rows in got.values() for t in rows)


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
    [c] = run_check([("numpy", NumpyBackend), ("plain", PlainBackend)], small, CheckConfig(steps=2)).comparisons
    names = {r.tensor for r in c.rows}
    assert c.ok and "dW" in names and "dlogits" not in names
