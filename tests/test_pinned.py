"""Pinned figures: Tiny Shakespeare's sizes, the seed-1337 start, the README's default run.

Every expected value here is computed independently of the code under test:
the split from the raw text with the lecture's int(0.9 * len), ids from a
dict of sorted characters, bigram counts by np.add.at, the exact loss by a
float64 log-softmax, and the seeded draws straight from NumPy's Generator as
bigram/core/sampling.py documents them (SeedSequence(seed).spawn(3): weights,
train batches, val batches). A few literals pin what those computations give
today, so a change of NumPy's streams (or of the documented recipe) shows up
here, next to the README figures it would move.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from backends import BACKENDS, backend
from clirun import ok
from safetensors.numpy import load_file

from bigram.core.backend import WEIGHT_KEY
from bigram.core.data import Batcher
from bigram.core.fast import CountsStream
from bigram.core.sampling import init_weights
from bigram.core.train import TrainConfig, make_train_batcher, train

VOCAB, TRAIN_TOKENS, VAL_TOKENS = 65, 1_003_854, 111_540
# README: the default run (1,500 counts steps, cosine 0.1 -> 0.01), numpy's final exact losses.
README_TRAIN, README_VAL = 2.460034308280256, 2.4889503805300204
README_START = (4.7407, 4.7373)  # step 0: train and val loss of the seed-1337 table


@pytest.fixture(scope="module")
def text(shakespeare_path) -> str:
    return shakespeare_path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def oracle(text):
    """(ids of the whole text, n_train, {split: (V,V) float64 counts}) computed without bigram."""
    chars = sorted(set(text))
    lut = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((lut[c] for c in text), dtype=np.int64, count=len(text))
    n = int(0.9 * len(ids))  # the lecture's split
    counts = {}
    for name, part in (("train", ids[:n]), ("val", ids[n:])):
        c = np.zeros((len(chars), len(chars)))
        np.add.at(c, (part[:-1], part[1:]), 1)
        counts[name] = c
    return ids, n, counts


def exact_loss(W, counts) -> float:
    """-sum_ij C_ij log softmax(W_i)_j / sum C, in float64."""
    W = np.asarray(W, dtype=np.float64)
    z = W - W.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (V,V)
    return float(-(counts * logp).sum() / counts.sum())


def streams(seed: int):
    """The documented recipe: SeedSequence(seed).spawn(3) -> weights, train, val; PCG64 each."""
    return [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(3)]


def test_tiny_shakespeare_sizes(shakespeare, text, oracle):
    ids, n, _ = oracle
    assert (len(set(text)), n, len(text) - n) == (VOCAB, TRAIN_TOKENS, VAL_TOKENS)
    assert shakespeare.vocab_size == VOCAB
    assert (len(shakespeare.train), len(shakespeare.val)) == (TRAIN_TOKENS, VAL_TOKENS)
    assert np.array_equal(shakespeare.train, ids[:n]) and np.array_equal(shakespeare.val, ids[n:])
    assert shakespeare.describe() == "vocab 65, 1,003,854 train / 111,540 val tokens"


def test_seed_1337_initial_table_is_the_weights_stream():
    weights_rng, train_rng, _ = streams(1337)
    want = weights_rng.standard_normal((VOCAB, VOCAB)).astype(np.float32)  # (V,V)
    got = init_weights(VOCAB, 1337)
    assert got.dtype == np.float32 and np.array_equal(got, want)
    assert not np.array_equal(got, train_rng.standard_normal((VOCAB, VOCAB)).astype(np.float32))
    # what NumPy's PCG64 and standard_normal give today (float32)
    assert got[0, :4].tolist() == pytest.approx([-0.9059039, 1.2519014, -1.6773413, -0.6003039], abs=1e-7)
    assert got[64, -2:].tolist() == pytest.approx([-0.8793846, 0.6822720], abs=1e-7)


def test_seed_1337_first_batch_is_the_train_stream(shakespeare, text):
    cfg = TrainConfig()
    B, T = cfg.batch_size, cfg.block_size
    u = streams(cfg.seed)[1].random(B)  # one uniform per row
    starts = (u * (TRAIN_TOKENS - T)).astype(np.int64)  # floor(u * n_windows)
    assert starts[:4].tolist() == [720653, 402744, 913964, 747344]
    x, y = make_train_batcher(shakespeare, cfg).get_batch()
    dec = shakespeare.tokenizer.decode
    assert [dec(r) for r in x] == [text[s:s + T] for s in starts]
    assert [dec(r) for r in y] == [text[s + 1:s + T + 1] for s in starts]
    assert dec(x[0]) == " holds u" and dec(x[2]) == "NCENTIO:"
    # the training loop's counts for its first step are this batch's pairs
    c, rows, N = CountsStream(make_train_batcher(shakespeare, cfg), VOCAB, "float64")()
    want = np.zeros((VOCAB, VOCAB))
    np.add.at(want, (x.ravel(), y.ravel()), 1)
    assert np.array_equal(c, want) and np.array_equal(rows, want.sum(axis=1)) and N == B * T


@pytest.mark.parametrize("name", BACKENDS)
def test_default_run_reports_its_checkpoints_exact_losses(name, shakespeare, shakespeare_path, oracle, tmp_path):
    """The README's default run: each reported loss is the exact loss of the table the loop holds
    (recomputed here from the checkpoint file and the text's own counts) and what `bigram eval` says."""
    _, _, counts = oracle
    out = tmp_path / "out"
    cfg = TrainConfig()
    model = backend(name).create(init_weights(VOCAB, cfg.seed), device="cpu", optim=cfg.optim)
    r = train(model, shakespeare, cfg, backend=name, out_dir=out, log=lambda s: None, progress=False)
    W = load_file(str(out / "model.safetensors"))[WEIGHT_KEY]  # (V,V) read without bigram
    assert r.exact and r.step == 1500
    # float64 against the backend's own float64 evaluation of the same float32 table: rounding only
    assert r.train_loss == pytest.approx(exact_loss(W, counts["train"]), abs=1e-12)
    assert r.val_loss == pytest.approx(exact_loss(W, counts["val"]), abs=1e-12)
    # the README's figures: float32 training, backends differ in the ninth decimal
    assert r.train_loss == pytest.approx(README_TRAIN, abs=1e-6) and f"{r.train_loss:.4f}" == "2.4600"
    assert r.val_loss == pytest.approx(README_VAL, abs=1e-6) and f"{r.val_loss:.4f}" == "2.4890"
    start = r.history[0]
    assert start["step"] == 0
    W0 = streams(cfg.seed)[0].standard_normal((VOCAB, VOCAB)).astype(np.float32)
    assert start["train_loss"] == pytest.approx(exact_loss(W0, counts["train"]), abs=1e-12)
    assert start["val_loss"] == pytest.approx(exact_loss(W0, counts["val"]), abs=1e-12)
    assert (round(start["train_loss"], 4), round(start["val_loss"], 4)) == README_START
    assert [h["step"] for h in r.history] == [0, 500, 1000, 1500]
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(h["train_loss"], h["val_loss"]) for h in logged] == [(h["train_loss"], h["val_loss"]) for h in r.history]
    stdout, _ = ok(["--backend", name, "eval", "--checkpoint", out, "--data", shakespeare_path, "--json"])
    ev = json.loads(stdout)
    assert ev["train_loss"] == pytest.approx(r.train_loss, abs=1e-12)
    assert ev["val_loss"] == pytest.approx(r.val_loss, abs=1e-12)
    saved = json.loads((out / "config.json").read_text())["metrics"]
    assert (saved["train_loss"], saved["val_loss"]) == (r.train_loss, r.val_loss)


@pytest.mark.parametrize("name", BACKENDS)
def test_seed_1337_sample_is_the_documented_chain(name, shakespeare):
    """`generate --seed 1337` from the seed-1337 table: a newline, then each character by inverse CDF
    of its predecessor's softmax row with coins from np.random.default_rng(1337), spelled out here."""
    from bigram.core.generate import sample_text

    W0 = streams(1337)[0].standard_normal((VOCAB, VOCAB)).astype(np.float32)
    model = backend(name).create(W0, device="cpu")
    got = sample_text(model, shakespeare.tokenizer, prompt=None, max_new_tokens=300, seed=1337)
    chars = sorted(set(shakespeare.tokenizer.decode(np.arange(VOCAB))))
    P = np.exp(W0.astype(np.float64) - W0.max(axis=1, keepdims=True))  # (V,V)
    cdf = np.cumsum(P / P.sum(axis=1, keepdims=True), axis=1)  # (V,V)
    seq = [chars.index("\n")]
    for u in np.random.default_rng(1337).random(300):
        row = cdf[seq[-1]]
        seq.append(next((j for j, c in enumerate(row) if u * row[-1] < c), VOCAB - 1))
    assert got == "".join(chars[i] for i in seq)
