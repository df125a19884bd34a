"""`bigram explain`: the numbers it shows are the backend's, and its hand-worked NLL is right."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bigram.cli.app import main
from bigram.core.explain import explain
from bigram.core.plugins import load_backends
from bigram.core.sampling import init_weights

CASES = [("numpy", "float32", 1e-5), ("numpy", "float64", 1e-12), ("torch", "float32", 1e-5),
         ("torch", "float64", 1e-12)]


def make(backend, dtype, corpus, seed=1337):
    W = init_weights(corpus.tokenizer.vocab_size, seed)
    return W, load_backends().get(backend).cls.create(W, device="cpu", dtype=dtype)


@pytest.mark.parametrize("backend,dtype,tol", CASES)
def test_hand_worked_nll_equals_the_backend_loss_for_that_example(backend, dtype, tol, shakespeare):
    W, model = make(backend, dtype, shakespeare)
    ex = explain(model, shakespeare, backend=backend, weights="init", batch_size=4, block_size=8, seed=1337)
    w = ex.worked
    x, y = ex.xb[w.b, w.t], ex.yb[w.b, w.t]
    # The backend's cross-entropy on that one position, asked for here, not taken from ex.
    _, loss = model.forward(np.array([[x]]), np.array([[y]]))
    assert abs(w.nll_by_hand - loss) < tol
    assert abs(w.nll_by_hand - w.nll_backend) < tol
    # And the hand NLL is -log softmax of the table row, computed independently in float64.
    row = W[x].astype(np.float64)
    want = -(row[y] - np.log(np.exp(row).sum()))
    assert abs(w.nll_by_hand - want) < 1e-5
    assert abs(ex.batch_loss_by_hand - ex.batch_loss) < tol
    assert w.target_char == shakespeare.tokenizer.decode([y]) and w.target_id == y


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_explanation_shapes_and_steps(backend, shakespeare):
    _, model = make(backend, "float32", shakespeare)
    ex = explain(model, shakespeare, backend=backend, weights="init", batch_size=3, block_size=5, seed=7)
    V = shakespeare.tokenizer.vocab_size
    assert ex.xb.shape == ex.yb.shape == (3, 5)
    assert np.array_equal(ex.xb[:, 1:], ex.yb[:, :-1])  # targets are the inputs shifted by one
    assert ex.logits_shape == (3, 5, V) and ex.flat_shape == (15, V) and ex.targets_shape == (15,)
    assert ex.lookup_matches
    assert np.allclose(ex.prob_row_sums, 1.0, atol=1e-6)
    assert [c for c, _ in ex.pairs] == [ex.x_rows[0][: t + 1] for t in range(5)]
    assert "".join(t for _, t in ex.pairs) == ex.y_rows[0]
    assert ex.expected_init_loss == pytest.approx(math.log(V)) and math.log(65) == pytest.approx(4.1744, abs=1e-4)
    g = ex.generation
    assert g.last_logits_shape == (3, V) and g.probs.shape == (3, V) and g.next_ids.shape == (3,)
    # The sample is the inverse CDF of the last step's row at the coin.
    cdf = np.cumsum(g.probs, axis=1)
    assert np.array_equal(g.next_ids, (cdf <= g.coins[:, None] * cdf[:, -1:]).sum(axis=1))


def test_piped_output_is_plain_text(shakespeare_path, capsys, monkeypatch):
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SystemExit) as e:
        main(["-b", "numpy", "explain", "--data", str(shakespeare_path)])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "when the input is" in out and "(4, 8, 65)" in out and "(32, 65)" in out
    assert "ln 65 = 4.1744" in out


def test_explain_a_trained_checkpoint_and_bad_sizes(shakespeare_path, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["-b", "numpy", "fit", "--data", str(shakespeare_path), "--out", str(tmp_path / "fit"), "--json"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["-b", "numpy", "explain", "--checkpoint", str(tmp_path / "fit"), "--data", str(shakespeare_path)])
    assert e.value.code == 0 and str(tmp_path / "fit") in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["-b", "numpy", "explain", "--data", str(shakespeare_path), "--block-size", "0"])
    assert e.value.code == 2 and "--block-size" in capsys.readouterr().err
