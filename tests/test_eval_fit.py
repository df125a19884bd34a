"""`bigram eval` and `bigram fit`: exact losses checked against independent computations."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from functools import lru_cache

import numpy as np
import pytest

from bigram.core.backend import fresh_state
from bigram.core.checkpoint import save_checkpoint
from bigram.core.data import TRAIN_FRACTION, Corpus
from bigram.core.sampling import init_weights

from backends import BACKENDS, backend
from clirun import run_cli


def run(argv, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    return run_cli(argv)


def run_json(argv, capsys):
    code, out, err = run(argv, capsys)
    assert code == 0, err
    return json.loads(out)


def random_checkpoint(corpus: Corpus, path, seed=3):
    """An untrained N(0,1) table: far from the optimum, so a wrong eval cannot hide."""
    W = init_weights(corpus.tokenizer.vocab_size, seed)
    config = {"corpus": {"sha256": corpus.sha256, "source": corpus.source}}
    return save_checkpoint(path, fresh_state(W), corpus.tokenizer, config)


def forward_mean_loss(model, tokens: np.ndarray, chunk: int = 8192) -> float:
    """Mean of the backend's own cross-entropy over every position, chunk by chunk."""
    x, y = tokens[:-1].astype(np.int64), tokens[1:].astype(np.int64)
    total = 0.0
    for s in range(0, len(x), chunk):
        xb, yb = x[None, s : s + chunk], y[None, s : s + chunk]  # (1,T)
        total += model.forward(xb, yb)[1] * xb.shape[1]
    return total / len(x)


@pytest.mark.parametrize("name", BACKENDS)
def test_eval_val_loss_is_the_mean_cross_entropy_over_every_val_position(name, shakespeare, tmp_path, capsys):
    ckpt = random_checkpoint(shakespeare, tmp_path / "ck")
    got = run_json(["-b", name, "eval", "--checkpoint", str(ckpt), "--data", shakespeare.source, "--json"], capsys)
    assert set(got) == {"train_loss", "val_loss", "optimum_train_loss", "gap", "exact"} and got["exact"] is True
    model = backend(name).create(init_weights(shakespeare.tokenizer.vocab_size, 3), device="cpu")
    want = forward_mean_loss(model, shakespeare.val)
    assert abs(got["val_loss"] - want) < 1e-5, (got["val_loss"], want)
    assert got["val_loss"] > 3.0  # an untrained table, far above the optimum
    assert math.isclose(got["gap"], got["train_loss"] - got["optimum_train_loss"], rel_tol=0, abs_tol=1e-12)
    assert got["gap"] > 0.5


@lru_cache(maxsize=4)
def pair_counts(text: str) -> tuple[Counter, Counter]:
    """(a, b) pair counts and row totals, straight from the characters."""
    pairs = Counter(zip(text, text[1:]))
    rows = Counter()
    for (a, _), n in pairs.items():
        rows[a] += n
    return pairs, rows


def addk_loss(eval_text: str, fit_text: str, vocab: set, k: float) -> float:
    """Mean NLL on eval_text of the add-k table fitted on fit_text, written from scratch."""
    fit_pairs, fit_rows = pair_counts(fit_text)
    eval_pairs, _ = pair_counts(eval_text)
    V = len(vocab)
    nll = 0.0
    for (a, b), n in eval_pairs.items():
        nll -= n * math.log((fit_pairs[(a, b)] + k) / (fit_rows[a] + V * k))
    return nll / (len(eval_text) - 1)


@pytest.mark.parametrize("name", BACKENDS)
def test_fit_train_loss_equals_an_independent_count(name, shakespeare_path, tmp_path, capsys):
    text = shakespeare_path.read_text(encoding="utf-8")
    n = int(TRAIN_FRACTION * len(text))  # one char per token
    train, val, vocab = text[:n], text[n:], set(text)
    for k in (0.0, 1.0):
        got = run_json(["-b", name, "fit", "--data", str(shakespeare_path), "--smoothing", str(k),
                        "--out", str(tmp_path / f"fit{k}"), "--json"], capsys)
        assert abs(got["train_loss"] - addk_loss(train, train, vocab, k)) < 1e-6
        if k > 0:  # with k = 0 an unseen val pair has probability 0 (the checkpoint: float32 tiny)
            assert abs(got["val_loss"] - addk_loss(val, train, vocab, k)) < 1e-6
    # k = 0 is the MLE itself: nothing left between it and the optimum.
    ev = run_json(["-b", name, "eval", "--checkpoint", str(tmp_path / "fit0.0"), "--data", str(shakespeare_path),
                   "--json"], capsys)
    assert abs(ev["gap"]) < 1e-6
    assert abs(ev["optimum_train_loss"] - addk_loss(train, train, vocab, 0.0)) < 1e-9


def test_fit_checkpoint_is_ordinary_on_every_backend(shakespeare_path, tmp_path, capsys):
    ck = tmp_path / "fit"
    run_json(["-b", "numpy", "fit", "--data", str(shakespeare_path), "--out", str(ck), "--json"], capsys)
    evals = [run_json(["-b", b, "eval", "--checkpoint", str(ck), "--data", str(shakespeare_path), "--json"], capsys)
             for b in BACKENDS]
    assert all(abs(e["val_loss"] - evals[0]["val_loss"]) < 1e-9 for e in evals)
    texts = []
    for b in BACKENDS:
        code, out, err = run(["-b", b, "generate", "--checkpoint", str(ck), "--max-new-tokens", "200"], capsys)
        assert code == 0, err
        texts.append(out)
    assert all(t == texts[0] for t in texts) and len(texts[0]) > 200


def small_corpus(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_eval_warns_on_another_corpus_with_the_same_vocab(tmp_path, capsys):
    a = small_corpus(tmp_path, "a.txt", "abcab cba bca abc " * 50)
    b = small_corpus(tmp_path, "b.txt", "cab bac abc cba " * 50)
    run_json(["-b", "numpy", "fit", "--data", str(a), "--out", str(tmp_path / "ck"), "--json"], capsys)
    code, out, err = run(["-b", "numpy", "eval", "--checkpoint", str(tmp_path / "ck"), "--data", str(b)], capsys)
    assert code == 0 and "warning" in err and "sha256" in err
    code, out, err = run(["-b", "numpy", "eval", "--checkpoint", str(tmp_path / "ck"), "--data", str(a)], capsys)
    assert code == 0 and "warning" not in err  # the checkpoint's own corpus


def test_eval_never_opens_the_path_a_checkpoint_names(tmp_path, capsys):
    a = small_corpus(tmp_path, "a.txt", "abcab cba bca abc " * 50)
    run_json(["-b", "numpy", "fit", "--data", str(a), "--out", str(tmp_path / "ck"), "--json"], capsys)
    # Without --data, eval takes Tiny Shakespeare from the (empty, offline) cache, not a.txt.
    code, out, err = run(["-b", "numpy", "eval", "--checkpoint", str(tmp_path / "ck")], capsys)
    assert code == 2 and "--data" in err and str(a) not in err


@pytest.mark.parametrize("other", ["abcab cba bcaz " * 50, "abab ba " * 50])
def test_eval_refuses_a_corpus_with_another_vocab(other, tmp_path, capsys):
    a = small_corpus(tmp_path, "a.txt", "abcab cba bca abc " * 50)
    b = small_corpus(tmp_path, "b.txt", other)
    run_json(["-b", "numpy", "fit", "--data", str(a), "--out", str(tmp_path / "ck"), "--json"], capsys)
    code, out, err = run(["-b", "numpy", "eval", "--checkpoint", str(tmp_path / "ck"), "--data", str(b)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error:") and err.count("\n") == 1 and "vocabulary" in err


def test_eval_one_split_and_bad_options(tmp_path, capsys):
    a = small_corpus(tmp_path, "a.txt", "abcab cba bca abc " * 50)
    run_json(["-b", "numpy", "fit", "--data", str(a), "--out", str(tmp_path / "ck"), "--json"], capsys)
    got = run_json(["-b", "numpy", "eval", "--checkpoint", str(tmp_path / "ck"), "--data", str(a), "--split", "val",
                    "--json"], capsys)
    assert got["train_loss"] is None and got["gap"] is None and got["val_loss"] > 0
    code, _, err = run(["-b", "numpy", "eval", "--checkpoint", str(tmp_path / "ck"), "--split", "test"], capsys)
    assert code == 2 and "--split" in err
    code, _, err = run(["-b", "numpy", "fit", "--data", str(a), "--smoothing", "-1", "--out", str(tmp_path / "x")],
                       capsys)
    assert code == 2 and "--smoothing" in err and not (tmp_path / "x").exists()


def test_numpy_eval_fit_and_explain_never_load_torch(tmp_path):
    a = small_corpus(tmp_path, "a.txt", "abcab cba bca abc " * 50)
    code = f"""
import sys
from bigram.cli.app import main
for argv in (["fit", "--data", {str(a)!r}, "--out", {str(tmp_path / 'ck')!r}, "--json"],
             ["eval", "--checkpoint", {str(tmp_path / 'ck')!r}, "--data", {str(a)!r}, "--json"],
             ["explain", "--data", {str(a)!r}]):
    try:
        main(["-b", "numpy", *argv])
    except SystemExit as e:
        assert not e.code, e.code
print("torch" in sys.modules)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "False"


def test_estimate_batchers_draw_independent_streams(shakespeare):
    """--eval-batches: train and val estimates draw their own uniforms, not the same ones on two splits."""
    import numpy as np

    from bigram.core.train import Evaluator, TrainConfig

    ev = Evaluator(shakespeare, TrainConfig(batch_size=64, eval_batches=1))
    u = {s: b.offsets(1)[0] / b.n_windows for s, b in ev.batchers.items()}
    assert np.abs(u["train"] - u["val"]).max() > 0.1  # a shared seed gives the same fractions (to ~1e-5)


@pytest.mark.parametrize("command", ["eval", "explain"])
def test_no_data_on_a_checkpoint_of_another_corpus_names_the_corpus_to_pass(tmp_path, command):
    """Without --data, eval and explain read Tiny Shakespeare: a names model must be told which file to pass."""
    names = tmp_path / "names.txt"
    names.write_text("emma\nolivia\nava\nisabella\nsophia\n" * 40)
    ck = tmp_path / "ck"
    code, _, err = run_cli(["--backend", "numpy", "train", "--data", names, "--steps", 3, "--max-new-tokens", 0,
                            "--out", ck])
    assert code == 0, err
    code, out, err = run_cli(["--backend", "numpy", command, "--checkpoint", ck])
    assert code == 2 and out == ""
    assert err.splitlines() == [err.strip()] and "'names.txt'" in err and "pass --data FILE" in err
    assert "Tiny Shakespeare" in err and str(names) not in err  # the recorded path is not echoed as a command
    code, _, err = run_cli(["--backend", "numpy", command, "--checkpoint", ck, "--data", names])
    assert code == 0, err
