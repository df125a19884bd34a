"""Independent oracles and edge cases, for every backend including the NumPy reference.

The property tests compare backends with each other; these compare each one
with math written here, so two backends cannot agree on a shared mistake:
the loss as a plain -log p sum, the gradient as float64 finite differences
and in closed form from bigram counts, AdamW as torch's documented update.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import BACKENDS, backend, dtypes, examples, params, require_dtype

from bigram.core.backend import WEIGHT_KEY, AdamWConfig

EPS32 = float(np.finfo(np.float32).eps)


def make(name, W, dtype="float64", optim=AdamWConfig()):
    return backend(name).create(np.asarray(W), device="cpu", dtype=dtype, optim=optim)


def grads(model, idx, targets) -> dict:
    if hasattr(model, "grads"):
        return model.grads(idx, targets)
    loss, dW = model.loss_and_grad(idx, targets)
    return {"loss": loss, "dW": dW}


# ----------------------------------------------------------------------------
# oracles, in plain Python floats


def oracle_nll(row: list[float], j: int) -> float:
    """-log softmax(row)_j, with math.fsum for a correctly rounded sum."""
    m = max(row)
    return m + math.log(math.fsum(math.exp(w - m) for w in row)) - row[j]


def oracle_loss(W, idx, targets) -> float:
    """Mean over positions of -log p(target | token): one Python loop, no vectorization."""
    rows = np.asarray(W, dtype=np.float64).tolist()
    terms = [oracle_nll(rows[i], j) for i, j in zip(np.ravel(idx), np.ravel(targets))]
    return math.fsum(terms) / len(terms)


def oracle_grad(W, idx, targets) -> np.ndarray:
    """dW = (n_i * softmax(W_i) - C_ij) / N: token i read n_i times, followed C_ij times by j."""
    W = np.asarray(W, dtype=np.float64)
    V, N = W.shape[0], np.size(idx)
    C = np.zeros((V, V))
    for i, j in zip(np.ravel(idx), np.ravel(targets)):
        C[i, j] += 1
    P = np.exp(W - W.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)  # (V,V)
    return (C.sum(axis=1, keepdims=True) * P - C) / N


def small_problem(rng, V, B, T, scale=1.0):
    return rng.standard_normal((V, V)) * scale, rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


# ----------------------------------------------------------------------------
# loss and gradient oracles


@pytest.mark.parametrize("name", BACKENDS)
def test_loss_and_gradient_match_plain_formulas(name):
    @settings(max_examples=examples(name, 20))
    @given(V=st.integers(1, 20), B=st.integers(1, 6), T=st.integers(1, 6), seed=st.integers(0, 2**32 - 1),
           scale=st.one_of(st.sampled_from([0.0, 50.0]), st.floats(0.0, 50.0)), dtype=st.sampled_from(dtypes(name)))
    def check(V, B, T, seed, scale, dtype):
        W, idx, targets = small_problem(np.random.default_rng(seed), V, B, T, scale)
        W = W.astype(dtype)  # the oracles read the same rounded table
        model = make(name, W, dtype)
        # float32: the logits' rounding, eps * |W|, reaches the loss and softmax; 64x margin.
        tol = 1e-12 if dtype == "float64" else 64 * EPS32
        scale_w = max(1.0, float(np.abs(W).max()))
        assert abs(model.forward(idx, targets)[1] - oracle_loss(W, idx, targets)) <= tol * scale_w
        g = grads(model, idx, targets)
        assert abs(g["loss"] - oracle_loss(W, idx, targets)) <= tol * scale_w
        np.testing.assert_allclose(g["dW"], oracle_grad(W, idx, targets), rtol=0, atol=tol * scale_w / idx.size)

    check()


@pytest.mark.parametrize("name", params(BACKENDS, "float64"))
def test_gradient_matches_float64_finite_differences(name):
    @settings(max_examples=examples(name, 10))
    @given(V=st.integers(1, 5), B=st.integers(1, 3), T=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
    def check(V, B, T, seed):
        W, idx, targets = small_problem(np.random.default_rng(seed), V, B, T, scale=2.0)
        h = 1e-5  # central differences: truncation h^2 ~ 1e-10, rounding eps/h ~ 2e-11
        fd = np.zeros_like(W)
        for i in range(V):
            for j in range(V):
                E = np.zeros_like(W)
                E[i, j] = h
                fd[i, j] = (make(name, W + E).forward(idx, targets)[1] - make(name, W - E).forward(idx, targets)[1]) / (2 * h)
        g = grads(make(name, W), idx, targets)
        np.testing.assert_allclose(g["dW"], fd, rtol=0, atol=1e-8)
        np.testing.assert_allclose(make(name, W).loss_and_grad(idx, targets)[1], fd, rtol=0, atol=1e-8)
        if "dlogits" in g:  # d loss / d logits[b,t,:], by differences of the oracle loss of the logits
            rows = W[idx]  # (B,T,V)
            for b, t, c in np.ndindex(B, T, V):
                up, dn = rows.copy(), rows.copy()
                up[b, t, c] += h
                dn[b, t, c] -= h
                f = lambda L: math.fsum(oracle_nll(L[q, s].tolist(), targets[q, s]) for q, s in np.ndindex(B, T)) / (B * T)  # noqa: E731
                assert abs(g["dlogits"][b, t, c] - (f(up) - f(dn)) / (2 * h)) <= 1e-8

    check()


# ----------------------------------------------------------------------------
# AdamW against torch's documented update (torch.optim.AdamW docs, "Algorithm")


def documented_adamw(theta, m, v, g, t, c: AdamWConfig):
    """One step, written as the torch docs write it (float64)."""
    theta = theta - c.lr * c.weight_decay * theta
    m = c.beta1 * m + (1 - c.beta1) * g
    v = c.beta2 * v + (1 - c.beta2) * g * g
    m_hat = m / (1 - c.beta1**t)
    v_hat = v / (1 - c.beta2**t)
    theta = theta - c.lr * m_hat / (np.sqrt(v_hat) + c.eps)
    return theta, m, v


@pytest.mark.parametrize("name", params(BACKENDS, "float64"))
def test_adamw_matches_documented_formula(name):
    @settings(max_examples=examples(name, 15))
    @given(V=st.integers(1, 30), steps=st.integers(1, 20), seed=st.integers(0, 2**32 - 1),
           lr=st.floats(1e-4, 0.5), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.5, 0.9999),
           eps=st.sampled_from([1e-8, 1e-6]), wd=st.floats(0.0, 0.5))
    def check(V, steps, seed, lr, beta1, beta2, eps, wd):
        rng = np.random.default_rng(seed)
        cfg = AdamWConfig(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=wd)
        W = rng.standard_normal((V, V))
        model = make(name, W, optim=cfg)
        theta, m, v = W.copy(), np.zeros_like(W), np.zeros_like(W)
        for t in range(1, steps + 1):
            x, y = rng.integers(0, V, (4, 8)), rng.integers(0, V, (4, 8))
            theta, m, v = documented_adamw(theta, m, v, oracle_grad(theta, x, y), t, cfg)
            model.train_step(x, y)
        s = model.get_state()
        assert int(s["adamw.step"]) == steps
        for key, want in ((WEIGHT_KEY, theta), ("adamw.exp_avg", m), ("adamw.exp_avg_sq", v)):
            np.testing.assert_allclose(s[key], want, rtol=0, atol=1e-10 * max(np.abs(want).max(), 1e-300), err_msg=key)

    check()


# ----------------------------------------------------------------------------
# edge cases


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_repeated_tokens_are_summed(name, dtype):
    require_dtype(name, dtype)
    # Token 0 read four times: its row gets four contributions, which a buffered
    # scatter (dW[idx] += dout) would collapse to the last one.
    W = np.zeros((3, 3), dtype=dtype)
    idx, targets = np.array([[0, 0, 0, 0]]), np.array([[1, 1, 2, 0]])
    dW = grads(make(name, W, dtype), idx, targets)["dW"]
    want = np.array([[1 / 3 - 1 / 4, 1 / 3 - 1 / 2, 1 / 3 - 1 / 4], [0, 0, 0], [0, 0, 0]])  # (4p - C)/4
    np.testing.assert_allclose(dW, want, rtol=0, atol=1e-7)
    np.testing.assert_allclose(make(name, W, dtype).loss_and_grad(idx, targets)[1], want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", params(BACKENDS, "float64"))
def test_single_position_batch(name):
    W, _, _ = small_problem(np.random.default_rng(0), 7, 1, 1)
    idx, targets = np.array([[3]]), np.array([[5]])
    model = make(name, W)
    logits, loss = model.forward(idx, targets)
    assert logits.shape == (1, 1, 7) and np.array_equal(logits[0, 0], W[3])
    assert loss == pytest.approx(oracle_loss(W, idx, targets), abs=1e-12)
    dW = grads(model, idx, targets)["dW"]
    np.testing.assert_allclose(dW, oracle_grad(W, idx, targets), rtol=0, atol=1e-14)
    assert np.count_nonzero(np.abs(dW).sum(axis=1)) == 1  # only row 3 was read


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_vocab_of_one_has_zero_loss(name, dtype):
    require_dtype(name, dtype)
    W = np.array([[2.5]], dtype=dtype)
    idx = np.zeros((3, 4), dtype=np.int64)
    cfg = AdamWConfig(lr=0.1, weight_decay=0.5)
    model = make(name, W, dtype, cfg)
    logits, loss = model.forward(idx, idx)
    assert logits.shape == (3, 4, 1) and loss == 0.0
    assert np.array_equal(grads(model, idx, idx)["dW"], np.zeros((1, 1)))
    model.train_step(idx, idx)  # zero gradient: only the decay moves the weight
    assert model.get_state()[WEIGHT_KEY][0, 0] == pytest.approx(2.5 * (1 - 0.1 * 0.5), rel=1e-6)
    assert np.array_equal(model.generate(idx[:, :1], np.random.default_rng(0).random((3, 5))), np.zeros((3, 6)))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sampling_ties(name, dtype):
    require_dtype(name, dtype)
    W = np.array([[1.0, 3.0, 3.0, 0.0]] * 4, dtype=dtype)  # tokens 1 and 2 tie for the top
    model = make(name, W, dtype)
    idx = np.zeros((2, 1), dtype=np.int64)
    coins = np.array([[0.25], [0.75]])
    # top-k 1 keeps every token tied with the k-th: 1 and 2, each with mass 1/2.
    assert model.generate(idx, coins, top_k=1)[:, 1].tolist() == [1, 2]
    assert model.generate(idx, coins, temperature=0.0)[:, 1].tolist() == [1, 1]  # greedy: the first maximum
    flat = make(name, np.zeros((4, 4), dtype=dtype), dtype)  # all tied: uniform, cdf = .25, .5, .75, 1
    got = flat.generate(np.zeros((5, 1), dtype=np.int64), np.array([[0.1], [0.3], [0.6], [0.8], [0.999]]))
    assert got[:, 1].tolist() == [0, 1, 2, 3, 3]


def oracle_pick(row: list[float], u: float, temperature: float, top_k) -> int:
    """One draw by the documented rule, in plain Python: logits / T, the top k (ties with the
    k-th kept), softmax, then the first token whose cumulative probability exceeds u * total."""
    z = [w / temperature for w in row]
    if top_k is not None:
        kth = sorted(z, reverse=True)[top_k - 1]
        z = [w if w >= kth else -math.inf for w in z]
    m = max(z)
    p = [math.exp(w - m) for w in z]
    cdf = np.cumsum(p).tolist()
    return next((j for j, c in enumerate(cdf) if u * cdf[-1] < c), len(row) - 1)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_top_k_and_temperature_follow_the_formula(name, dtype):
    """Distinct logits, so the (k+1)-th token has real mass: top-k must cut exactly there, and T scale."""
    require_dtype(name, dtype)
    row = [math.log(w) for w in (1.0, 0.75, 0.5, 0.25, 0.125)]
    W = np.array([row[i:] + row[:i] for i in range(5)], dtype=dtype)  # (5,5) each row a rotation
    rows = np.asarray(W, dtype=np.float64).tolist()
    model = make(name, W, dtype)
    coins = np.arange(0.03, 1, 0.06)  # (17,)
    starts = np.arange(len(coins))[:, None] % 5  # (17,1)
    for temperature, top_k in ((1.0, 2), (1.0, 4), (0.5, 3), (2.0, None), (1.0, 1)):
        got = model.generate(starts, coins[:, None], temperature=temperature, top_k=top_k)[:, 1].tolist()
        want = [oracle_pick(rows[s], u, temperature, top_k) for s, u in zip(starts[:, 0], coins)]
        assert got == want, (temperature, top_k)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sampling_at_exact_cdf_boundaries(name, dtype):
    """Coins equal to cumulative sums pick the token after the boundary; probability-0 tokens never come.

    A logit of -1e4 below the row max has probability exactly 0 (exp underflows in either
    dtype) and equal logits share the rest exactly (1/2, 1/4), so every cumulative sum is exact.
    """
    require_dtype(name, dtype)
    Z = -1e4
    W = np.array([[Z, 0, 0, 0, 0],  # cdf 0, .25, .5, .75, 1
                  [0, Z, Z, 0, Z],  # cdf .5, .5, .5, 1, 1
                  [Z, 0, 0, 0, 0], [Z, 0, 0, 0, 0], [Z, 0, 0, 0, 0]], dtype=dtype)
    model = make(name, W, dtype)
    cases = [(0, 0.0, 1), (0, 0.25, 2), (0, 0.5, 3), (0, 0.75, 4), (1, 0.0, 0), (1, 0.5, 3), (1, 0.9999999, 3)]
    starts = np.array([[s] for s, _, _ in cases])  # (7,1)
    coins = np.array([[c] for _, c, _ in cases])  # (7,1)
    want = [w for _, _, w in cases]
    assert model.generate(starts, coins)[:, 1].tolist() == want  # the batched path
    assert [int(model.generate(s[None], c[None])[0, 1]) for s, c in zip(starts, coins)] == want  # one row at a time
    chain = model.generate(np.array([[1]]), np.array([[0.5, 0.0, 0.25, 0.0, 0.0, 0.75]]))
    assert chain[0].tolist() == [1, 3, 1, 0, 1, 0, 4]


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_logits_stay_finite_and_exact(name, dtype):
    require_dtype(name, dtype)
    # Logits of +-4e4: exp() overflows in both dtypes unless softmax subtracts the row max.
    rng = np.random.default_rng(1)
    W = (rng.standard_normal((10, 10)) * 1e4).astype(dtype)
    idx, targets = rng.integers(0, 10, (4, 5)), rng.integers(0, 10, (4, 5))
    model = make(name, W, dtype)
    loss = model.forward(idx, targets)[1]
    g = grads(model, idx, targets)
    assert math.isfinite(loss) and np.all(np.isfinite(g["dW"]))
    # float32 logits of 4e4 hold eps*4e4 = 5e-3 absolute: the loss's error scale.
    tol = 1e-12 if dtype == "float64" else 64 * EPS32
    assert loss == pytest.approx(oracle_loss(W, idx, targets), abs=tol * float(np.abs(W).max()))
    np.testing.assert_allclose(g["dW"], oracle_grad(W, idx, targets), rtol=0, atol=1e-6)
    out = model.generate(idx[:, :1], rng.random((4, 3)))
    assert np.array_equal(out[:, 1], W[idx[:, 0]].argmax(axis=1))  # all mass on the row max
    model.train_step(idx, targets)
    assert np.all(np.isfinite(model.get_state()[WEIGHT_KEY]))
