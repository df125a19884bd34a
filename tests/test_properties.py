"""Property tests: every installed backend against the NumPy reference, on random shapes and values.

Only the public Model protocol is used (Backend.create, forward, grads or
loss_and_grad, train_step, get_state, generate), so a third-party backend
installed next to bigram is tested here exactly like torch. Which backends:
tests/backends.py ($BIGRAM_TEST_BACKENDS; default every installed one).

Errors are measured against each tensor's own scale: max|got - ref| / max|ref|.
float64 aims at 1e-10. float32 tolerances are multiples of its eps (1.2e-7),
each explained where it is set.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backends import CANDIDATES, backend, dtypes, examples, require_dtype

from bigram.core.backend import WEIGHT_KEY, AdamWConfig

EPS32 = float(np.finfo(np.float32).eps)
TOL64 = 1e-10
# float32 softmax: exp(z - max) carries the rounding of z, eps * |logit|, so
# loss, dlogits and dW errors scale with max(1, max|W|) (seen: up to 12x that
# over a few hundred random cases, torch and the example plugin alike); 64x
# leaves a 5x margin.
TOL32_GRAD = 64 * EPS32


def make(name, W, dtype, optim=AdamWConfig()):
    return backend(name).create(W, device="cpu", dtype=dtype, optim=optim)


def grads(model, idx, targets) -> dict:
    """grads() where the backend has it, else loss_and_grad() (then no dlogits)."""
    if hasattr(model, "grads"):
        return model.grads(idx, targets)
    loss, dW = model.loss_and_grad(idx, targets)
    return {"loss": loss, "dW": dW}


def assert_close(got, ref, tol, *, scale=None, what=""):
    """max|got - ref| <= tol * scale, scale defaulting to max|ref| (exact match when ref is all 0)."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(ref)), f"{what}: not finite"
    scale = float(np.abs(ref).max(initial=0.0)) if scale is None else scale
    err = float(np.abs(got - ref).max(initial=0.0))
    assert err <= tol * scale, f"{what}: max abs diff {err:.3g} > {tol:.3g} * scale {scale:.3g}"


@st.composite
def problems(draw, max_v=300, max_b=64, max_t=64, min_scale=0.0, dtypes=("float32", "float64")):
    """A random table (V,V) of N(0, scale^2) weights and a (B,T) batch."""
    V = draw(st.integers(1, max_v))
    B, T = draw(st.integers(1, max_b)), draw(st.integers(1, max_t))
    scale = draw(st.one_of(st.sampled_from([min_scale, 1.0, 50.0]), st.floats(min_scale, 50.0)))
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    W = (rng.standard_normal((V, V)) * scale).astype(dtype)  # (V,V)
    return W, rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T)), rng


def grad_tol(W) -> float:
    return TOL64 if W.dtype == np.float64 else TOL32_GRAD * max(1.0, float(np.abs(W).max(initial=0.0)))


@pytest.mark.parametrize("name", CANDIDATES)
def test_logits_loss_and_gradients_match_reference(name):
    @settings(max_examples=examples(name, 25))
    @given(p=problems(dtypes=dtypes(name)))
    def check(p):
        W, idx, targets, _ = p
        ref, got = make("numpy", W, W.dtype.name), make(name, W, W.dtype.name)
        (lr, loss_r), (lg, loss_g) = ref.forward(idx, targets), got.forward(idx, targets)
        assert np.array_equal(lg, lr)  # a row lookup copies the table: exact in both dtypes
        assert got.forward(idx)[1] is None
        tol = grad_tol(W)
        # The loss subtracts logits of size |W|: its error scales with them, not with the loss.
        # In float32 it is also a mean of N = B*T terms, summed in each library's own order
        # (XLA on CPU largely in sequence: 22 eps off at 29x16 for equal terms); any order is
        # within (N-1)*eps/2 of the exact sum relative to sum|terms| (Higham 4.2).
        scale_w = max(1.0, float(np.abs(W).max()))
        mean_err = 0.0 if W.dtype == np.float64 else (idx.size - 1) * EPS32 / 2 * abs(loss_r)
        assert_close(loss_g, loss_r, tol + mean_err / scale_w, scale=scale_w, what="loss")
        gr, gg = grads(ref, idx, targets), grads(got, idx, targets)
        if "dlogits" in gg:
            assert_close(gg["dlogits"], gr["dlogits"], tol, what="dlogits")
        assert_close(gg["dW"], gr["dW"], tol, what="dW")

    check()


@st.composite
def adamw_runs(draw, dtype):
    # Batches up to 16x16 keep 20 steps cheap; shapes up to 64 are covered above.
    # Tables start at scale 0.5: with exactly equal logits (scale 0), gradient
    # entries cancel to rounding level, and Adam's g/(|g| + eps) then turns
    # which way the rounding went into a step of +-lr: ill-conditioned, not a
    # bug, and it happens in both dtypes. A zero gradient (V = 1) is an edge
    # case in test_oracles.py.
    W, _, _, rng = draw(problems(max_b=16, max_t=16, min_scale=0.5))
    optim = AdamWConfig(
        lr=draw(st.floats(1e-4, 0.5)), beta1=draw(st.floats(0.0, 0.99)), beta2=draw(st.floats(0.5, 0.9999)),
        eps=draw(st.sampled_from([1e-8, 1e-6])), weight_decay=draw(st.floats(0.0, 0.5)),
    )
    B, T = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    V = W.shape[0]
    data = [(rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))) for _ in range(draw(st.integers(1, 20)))]
    return W.astype(dtype), optim, data


# Each step starts both backends from the reference's state (set_state), so
# the test measures one AdamW step at t = 1..20, not the chaos of many.
#
# What the two backends may differ by is propagated from what each step reads.
# 1. The moments' own rounding is relative to their operands, not to their
#    result: the reference's m + (1-b1)(g - m) and torch's lerp (g - (g - m) b1
#    for weights >= 0.5) round differently by a few eps of |m_prev| + |g|, so
#    a moment that falls from 0.5 to 1e-4 in one step (beta1 0: a table that now
#    predicts its targets, below) keeps an error of ~ulp(0.5) = 3e-8, which is
#    5e-4 of its new size. The scale bound below is therefore taken over the
#    operands: max(|m_prev|, |g|) for m, max(|v_prev|, g^2) for v.
# 2. The gradient's float32 error is absolute, not relative to the largest
#    gradient: dW_ij = (n_i p_ij - c_ij)/N, and a p_ij near 1 carries an error of
#    about eps32 * n_i/N that the subtraction keeps. With dg = |g_got - g_ref|,
#    the two backends' measured gradient difference (which the gradient test
#    bounds), per entry:
#      m = b1 m + (1-b1) g      -> off by (1-b1) * dg
#      v = b2 v + (1-b2) g^2    -> off by (1-b2) * |g_got^2 - g_ref^2| <= (1-b2) * dg * (2|g_ref| + dg)
#      p -= lr m_hat/(sqrt(v_hat) + eps): slope in g up to about lr/eps, where the
#         gradient is quantized near Adam's eps (float32 p ~ 1 gives g in steps of
#         eps32/N ~ 1e-8), so a one-ulp difference in g legitimately moves a weight
#         by up to lr: 4 * lr * dg / eps.
#    Elsewhere these are ~1e-15 and the scale bound binds.
# float32 scale bound: a few eps carried through m/sqrt(v), a quotient of two
# rounded numbers: 1e-4 of each tensor's (operands') scale. A dropped bias
# correction turns the first step from lr*sign(g) into lr*(1 - beta1)/sqrt(1 -
# beta2)*sign(g), far past it; a wrong beta moves a moment by (b - b')*|m - g|.
TOL32_ADAMW = 1e-4


def adamw_example(dtype):
    """The run that failed a bound relative to the new moment's scale (float32; torch, jax and
    the example plugin): after the first step the table predicts token 0 after token 0
    almost surely, so the second gradient is 1e-4 while the moment it replaces (beta1 0) was 0.5."""
    W = np.array([[-2.07, -12.21], [0.0, 0.0]], dtype=dtype)
    optim = AdamWConfig(lr=0.5, beta1=0.0, beta2=0.5, eps=1e-8, weight_decay=0.0)
    x = np.zeros((1, 2), dtype=np.int64)
    return W, optim, [(x, np.array([[1, 0]])), (x, np.array([[0, 0]]))]


def moment_allowance(key, optim, g_ref, dg):
    """(V,V): how far a backend's moment may move from the reference's for gradients dg apart (see above)."""
    if key == "adamw.exp_avg":
        return (1 - optim.beta1) * dg
    return (1 - optim.beta2) * dg * (2 * np.abs(g_ref) + dg)


@pytest.mark.parametrize("name", CANDIDATES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_adamw_steps_match_reference(name, dtype):
    require_dtype(name, dtype)

    @settings(max_examples=examples(name, 15))
    @given(run=adamw_runs(dtype))
    @example(run=adamw_example(dtype))
    def check(run):
        W, optim, batches = run
        ref, got = make("numpy", W, dtype, optim), make(name, W, dtype, optim)
        tol = TOL64 if dtype == "float64" else TOL32_ADAMW
        for t, (x, y) in enumerate(batches, start=1):
            prev = ref.get_state()
            got.set_state(prev)
            g_ref = grads(ref, x, y)["dW"].astype(np.float64)  # (V,V)
            dg = np.abs(grads(got, x, y)["dW"].astype(np.float64) - g_ref)  # (V,V)
            loss_r, loss_g = ref.train_step(x, y), got.train_step(x, y)
            assert_close(loss_g, loss_r, tol, scale=max(1.0, abs(loss_r)), what=f"loss at step {t}")
            sr, sg = ref.get_state(), got.get_state()
            assert int(sg["adamw.step"]) == int(sr["adamw.step"]) == t
            for key, g_term in (("adamw.exp_avg", np.abs(g_ref)), ("adamw.exp_avg_sq", g_ref * g_ref)):
                scale = max(np.abs(prev[key]).max(), np.abs(sr[key]).max(), g_term.max())
                assert_within(sg[key], sr[key], tol * scale + moment_allowance(key, optim, g_ref, dg),
                              f"{key} at step {t}")
            w_ref = sr[WEIGHT_KEY].astype(np.float64)
            assert_within(sg[WEIGHT_KEY], w_ref, tol * np.abs(w_ref).max() + 4 * optim.lr * dg / optim.eps,
                          f"weights at step {t}")

    check()


def assert_within(got, ref, allowed, what):
    """|got - ref| <= allowed entry by entry (allowed (V,V) or a scalar); the worst entry named."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    excess = np.abs(got - ref) - allowed  # (V,V)
    worst = np.unravel_index(np.argmax(excess), ref.shape)
    assert np.all(excess <= 0), (f"{what}, entry {worst}: {got[worst]} vs {ref[worst]}, "
                                 f"allowed {np.broadcast_to(allowed, ref.shape)[worst]:.3g}")


@st.composite
def sampling_cases(draw, dtypes=("float32", "float64")):
    V = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    # Rounded weights make ties (for top-k and greedy) common.
    W = np.round(rng.standard_normal((V, V)) * draw(st.floats(0.0, 50.0)), draw(st.integers(0, 2)))
    dtype = draw(st.sampled_from(dtypes))
    B, T, N = draw(st.integers(1, 8)), draw(st.integers(1, 4)), draw(st.integers(1, 64))
    temperature = draw(st.one_of(st.just(0.0), st.just(1.0), st.floats(0.05, 3.0)))
    top_k = draw(st.one_of(st.none(), st.integers(1, V)))
    return W.astype(dtype), rng.integers(0, V, (B, T)), rng.random((B, N)), temperature, top_k


@pytest.mark.parametrize("name", CANDIDATES)
def test_generated_ids_match_reference_for_identical_coins(name):
    @settings(max_examples=examples(name, 30))
    @given(case=sampling_cases(dtypes(name)))
    def check(case):
        W, idx, coins, temperature, top_k = case
        dtype = W.dtype.name
        want = make("numpy", W, dtype).generate(idx, coins, temperature=temperature, top_k=top_k)
        got = make(name, W, dtype).generate(idx, coins, temperature=temperature, top_k=top_k)
        assert got.shape == (idx.shape[0], idx.shape[1] + coins.shape[1])
        assert np.array_equal(got[:, : idx.shape[1]], idx)  # the prompt is kept
        assert np.array_equal(got, want)

    check()
