"""The Python API (`import bigram`): the CLI's numbers, light to import, typed, documented, shown usefully."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import typing

import numpy as np
import pytest

import bigram
from bigram.core.errors import BigramError

from clirun import run_cli


@pytest.fixture(scope="module")
def model(shakespeare):
    """bigram.train with every default but the backend: the CLI's main run, through the API."""
    return bigram.train(shakespeare, backend="numpy", log=None)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, shakespeare_path):
    """The same run through `bigram --backend numpy train`: its JSON and its checkpoint."""
    out = tmp_path_factory.mktemp("cli") / "out"
    code, stdout, err = run_cli(["-b", "numpy", "train", "--data", shakespeare_path, "--out", out, "--json",
                                 "--max-new-tokens", "0"])
    assert code == 0, err
    return json.loads(stdout), out


def test_import_bigram_loads_neither_numpy_nor_torch():
    probe = "import sys, bigram; bigram.__all__; print('numpy' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    probe = "import sys, bigram; bigram.Corpus; bigram.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]  # the API itself, with NumPy, still no torch


def test_all_names_resolve_and_are_typed_and_documented():
    assert {"Corpus", "Model", "NextChars", "train", "fit", "load", "check", "explain"} <= set(bigram.__all__)
    for name in bigram.__all__:
        obj = getattr(bigram, name)
        assert inspect.getdoc(obj), f"bigram.{name} has no docstring"
        if inspect.isfunction(obj):
            typing.get_type_hints(obj)  # every annotation resolves
            sig = inspect.signature(obj)
            assert sig.return_annotation is not inspect.Signature.empty, name
            untyped = [p for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
            assert not untyped, f"bigram.{name}: untyped {untyped}"
    for name in ("generate", "next_probs", "eval", "save"):
        method = getattr(bigram.Model, name)
        assert inspect.getdoc(method) and inspect.signature(method).return_annotation is not inspect.Signature.empty
        typing.get_type_hints(method)
    with pytest.raises(AttributeError):
        bigram.no_such_name


def test_train_reaches_exactly_the_cli_numbers(model, cli_run):
    got, _ = cli_run
    assert model.train_loss == got["train_loss"] and model.val_loss == got["val_loss"]
    assert model.step == got["steps"] == 1500
    assert [r["step"] for r in model.history] == [0, 500, 1000, 1500]
    assert model.history[-1]["train_loss"] == got["train_loss"]


def test_save_writes_the_cli_checkpoint_and_load_generates_its_text(model, cli_run, tmp_path):
    from bigram.core.checkpoint import load_checkpoint

    _, out = cli_run
    path = model.save(tmp_path / "api")
    mine, theirs = load_checkpoint(path), load_checkpoint(out)
    for key in theirs.state:
        assert np.array_equal(mine.state[key], theirs.state[key]), key
    assert mine.config["metrics"] == theirs.config["metrics"] and mine.config["train"] == theirs.config["train"]
    assert (path / "metrics.jsonl").read_text().count("\n") == 4
    code, text, err = run_cli(["-b", "numpy", "generate", "--checkpoint", out, "--max-new-tokens", "200"])
    assert code == 0, err
    for backend in ("numpy", "torch"):
        again = bigram.load(path, backend=backend)
        assert again.generate(max_new_tokens=200) + "\n" == text
        assert again.step == 1500 and again.train_loss == model.train_loss


def test_eval_gives_the_cli_eval(model, cli_run, shakespeare, shakespeare_path):
    _, out = cli_run
    code, stdout, err = run_cli(["-b", "numpy", "eval", "--checkpoint", out, "--data", shakespeare_path, "--json"])
    assert code == 0, err
    want = json.loads(stdout)
    for got in (model.eval(shakespeare), model.eval(shakespeare_path)):
        assert got.to_json() == want
    assert got.gap == got.train_loss - got.optimum_train_loss > 0


def test_reprs_show_backend_vocab_step_and_losses(model, shakespeare):
    r = repr(model)
    assert r.startswith("Model(backend='numpy', device='cpu', dtype='float32', vocab_size=65, step=1500,")
    assert f"train_loss={model.train_loss:.6f}" in r and f"val_loss={model.val_loss:.6f}" in r
    html = model._repr_html_()
    for needle in ("numpy", "65", "1500", f"{model.train_loss:.6f}", f"{model.val_loss:.6f}", "exact", "␣"):
        assert needle in html, needle
    assert "1,003,854 train / 111,540 val tokens" in repr(shakespeare) and "<table>" in shakespeare._repr_html_()
    table = model.next_probs("<") if "<" in model.tokenizer.chars else model.next_probs("&")
    assert "&amp;" in table._repr_html_() or "&lt;" in table._repr_html_()  # cells are HTML-escaped


@pytest.mark.parametrize("f", [0.1, 0.25, 0.0, 0.5])
def test_from_text_splits_at_the_lectures_point(f):
    text = "abcdefghij" * 37
    c = bigram.Corpus.from_text(text, val_fraction=f)
    n = int((1 - f) * len(text))
    assert len(c.train) == n and len(c.val) == len(text) - n
    assert c.has_val == (f > 0) and c.splits == (("train", "val") if f > 0 else ("train",))
    assert c.tokenizer.decode(np.concatenate([c.train, c.val])) == text


@pytest.mark.parametrize("f", [1, 1.0, -0.1, float("nan"), float("inf"), "0.1", True])
def test_bad_val_fraction_is_a_one_line_error(f):
    with pytest.raises(BigramError, match="--val-fraction must be a number from 0"):
        bigram.Corpus.from_text("hello world", val_fraction=f)


def test_eval_refuses_a_corpus_in_another_vocabulary(model):
    other = bigram.Corpus.from_text("abc abc cab " * 20)
    with pytest.raises(BigramError, match="another vocabulary"):
        model.eval(other)


def test_fit_and_check_through_the_api(shakespeare, tmp_path):
    fitted = bigram.fit(shakespeare, backend="torch", out=tmp_path / "fit")
    code, stdout, err = run_cli(["-b", "numpy", "fit", "--data", shakespeare.source, "--out", tmp_path / "f2",
                                 "--json"])
    assert code == 0, err
    want = json.loads(stdout)
    assert abs(fitted.train_loss - want["train_loss"]) < 1e-9 and abs(fitted.val_loss - want["val_loss"]) < 1e-9
    assert fitted.step == 0 and bigram.load(tmp_path / "fit", backend="numpy").history == fitted.history
    report = bigram.check(["numpy", "torch"], shakespeare, steps=3)
    assert report.ok and report.backends == ["numpy", "torch"] and "CheckReport(ok=True" in repr(report)
    assert [r["tensor"] for r in report.to_json()["comparisons"][0]["rows"]][:2] == ["logits", "loss"]
    with pytest.raises(BigramError, match="names a backend twice"):
        bigram.check(["numpy", "numpy"], shakespeare)


def test_unknown_backend_is_a_bigram_error(shakespeare):
    with pytest.raises(BigramError, match="unknown backend 'nope'"):
        bigram.train(shakespeare, backend="nope")


def test_every_export_survives_the_backends_being_imported():
    """Importing a backend binds bigram.backends (the subpackage): no export may share that name."""
    probe = ("import bigram; before = {n: getattr(bigram, n) for n in bigram.__all__}; "
             "import bigram.backends.numpy_backend; "
             "print([n for n in bigram.__all__ if getattr(bigram, n) is not before[n]]); "
             "print('numpy' in [r['name'] for r in bigram.list_backends()]); "
             "print('import_module' in dir(bigram))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "True", "False"]
