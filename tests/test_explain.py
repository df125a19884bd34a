"""`bigram explain`: the numbers it shows are the backend's, and its hand-worked NLL is right."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bigram.cli.app import main
from bigram.core.explain import explain
from bigram.core.sampling import init_weights

from backends import BACKENDS, backend as backend_class, require_dtype

TOL = {"float32": 1e-5, "float64": 1e-12}


def make(backend, dtype, corpus, seed=1337):
    W = init_weights(corpus.tokenizer.vocab_size, seed)
    return W, backend_class(backend).create(W, device="cpu", dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_worked_nll_equals_the_backend_loss_for_that_example(backend, dtype, shakespeare):
    require_dtype(backend, dtype)
    tol = TOL[dtype]
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


@pytest.mark.parametrize("backend", BACKENDS)
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


# ----------------------------------------------------------------------------
# the backward pass and one AdamW update (bigram/core/explain.py)

GRAD_TOL = {"float32": 1e-8, "float64": 1e-15}  # |dlogits| <= 1/(B*T): float32 rounding is ~1e-10
STEP_TOL = {"float32": 1e-6, "float64": 1e-12}  # weights ~1 after one update of ~lr


def reference_grads(W, xb, yb):
    """dlogits (B,T,V) and dW (V,V) of the mean cross-entropy, written here in float64 from the table."""
    W = W.astype(np.float64)
    B, T = xb.shape
    logits = W[xb]  # (B,T,V)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p[np.arange(B)[:, None], np.arange(T)[None, :], yb] -= 1.0
    dlogits = p / (B * T)
    dW = np.zeros_like(W)
    for b in range(B):  # one position at a time: the scatter-add, spelled out
        for t in range(T):
            dW[xb[b, t]] += dlogits[b, t]
    return dlogits, dW


def torch_adamw_step(W, dW, optim, state=None):
    """W after one torch.optim.AdamW step with gradient dW (float64), from the given moments and step."""
    import torch

    p = torch.nn.Parameter(torch.tensor(W, dtype=torch.float64))
    opt = torch.optim.AdamW([p], lr=optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps,
                            weight_decay=optim.weight_decay)
    if state is not None and int(state["adamw.step"]) > 0:
        opt.state[p] = {"step": torch.tensor(float(state["adamw.step"])),
                        "exp_avg": torch.tensor(state["adamw.exp_avg"], dtype=torch.float64),
                        "exp_avg_sq": torch.tensor(state["adamw.exp_avg_sq"], dtype=torch.float64)}
    p.grad = torch.tensor(dW, dtype=torch.float64)
    opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize("backend,dtype", [(b, d) for b in ("numpy", "torch") for d in ("float32", "float64")])
def test_hand_worked_dlogits_scatter_add_and_adamw_equal_the_backend(backend, dtype, shakespeare):
    from bigram.core.backend import AdamWConfig

    W, model = make(backend, dtype, shakespeare)
    before = model.get_state()
    ex = explain(model, shakespeare, backend=backend, weights="init", batch_size=4, block_size=8, seed=1337,
                 optim=AdamWConfig())
    ref_dlogits, ref_dW = reference_grads(before["token_embedding_table.weight"], ex.xb, ex.yb)

    g = ex.dlogits  # (softmax - onehot) / (B*T) for one position, by hand
    assert g.n_positions == 32 and g.target_id == ex.yb[g.b, g.t]
    assert np.abs(g.by_hand - ref_dlogits[g.b, g.t]).max() < 1e-15  # the hand formula is right
    assert np.abs(g.by_hand - g.backend).max() < GRAD_TOL[dtype]  # and the backend agrees with it
    assert g.max_abs_diff == np.abs(g.by_hand - g.backend).max()
    assert (g.by_hand < 0).sum() == 1 and g.by_hand[g.target_id] < 0

    s = ex.scatter  # a row read by two or more positions receives every contribution
    assert len(s.positions) >= 2 and all(ex.xb[b, t] == s.row for b, t in s.positions)
    assert (ex.xb == s.row).sum() == len(s.positions)
    assert np.abs(s.summed - ref_dW[s.row]).max() < GRAD_TOL[dtype] * len(s.positions)
    assert np.abs(s.backend_row - ref_dW[s.row]).max() < GRAD_TOL[dtype] * len(s.positions)
    # Overwriting instead of adding (dW[xb] = dlogits) would leave one contribution: far off.
    assert np.abs(s.contributions[-1] - s.backend_row).max() > 0.01
    assert s.unread_zero and s.rows_read == len(np.unique(ex.xb))

    a = ex.adamw  # one weight's update by hand, against torch.optim.AdamW itself and the backend's step
    assert (a.i, a.j, a.t) == (s.row, s.columns[0], 1)
    want = torch_adamw_step(before["token_embedding_table.weight"], ref_dW, AdamWConfig())[a.i, a.j]
    assert abs(a.by_hand - want) < STEP_TOL[dtype]
    assert abs(a.backend - a.by_hand) < STEP_TOL[dtype] and a.diff == abs(a.backend - a.by_hand)
    after = model.get_state()  # the step was taken, read, and undone: the model is as it was
    assert all(np.array_equal(after[k], before[k]) for k in before) and a.backend != a.w
    assert 0.09 < a.table_moved < 0.11  # at t = 1 each weight with a gradient moves by about lr = 0.1


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_explain_a_checkpoint_takes_its_next_adamw_step_with_its_moments(backend, shakespeare, shakespeare_path,
                                                                         tmp_path):
    import bigram
    from bigram.core.backend import AdamWConfig

    from clirun import train_checkpoint

    ck = train_checkpoint(tmp_path / "ck", shakespeare_path, backend=backend, steps=20)
    model = bigram.load(ck, backend=backend)
    state = model.impl.get_state()
    ex = bigram.explain(shakespeare, model, batch_size=4, block_size=8)
    a = ex.adamw
    assert a.t == 21 and a.m != 0 and a.v != 0  # the saved moments, not fresh ones
    _, ref_dW = reference_grads(state["token_embedding_table.weight"], ex.xb, ex.yb)
    want = torch_adamw_step(state["token_embedding_table.weight"], ref_dW, AdamWConfig(), state)[a.i, a.j]
    assert abs(a.by_hand - want) < 1e-6 and abs(a.backend - a.by_hand) < 1e-6
    # explain steps a copy: the caller's model is untouched
    assert np.array_equal(model.weights, state["token_embedding_table.weight"]) and model.step == 20
    text = str(ex)
    for title in ("backward through the loss", "scatter-add", "one AdamW update", "generation"):
        assert title in text
    assert f"W[{a.i},{a.j}] at step t = 21" in text


def test_piped_output_walks_the_backward_pass(shakespeare_path):
    from clirun import run_cli

    code, out, err = run_cli(["-b", "numpy", "explain", "--data", str(shakespeare_path)])
    assert code == 0, err
    import re

    titles = [m.group(2) for m in map(re.compile(r"^(\d+)\. ([^:]*)").match, out.splitlines()) if m]
    assert titles == [
        "a batch", "context -> target", "embedding lookup", "softmax", "one example's negative log-likelihood, by hand",
        "the loss to expect at initialization", "backward through the loss", "backward through the lookup",
        "one AdamW update of one weight, by hand from torch's formula", "generation"]
    assert "dloss/dlogits[b,t] = (softmax(logits[b,t]) - onehot(target)) / 32" in out
    assert "every other row's gradient is exactly 0: True" in out
