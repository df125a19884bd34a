"""Every backend agrees with the NumPy reference: same start, same batches, same losses, same text.

Run over every selected backend (tests/backends.py: $BIGRAM_TEST_BACKENDS).
"""

import numpy as np
import pytest
from backends import BACKENDS, CANDIDATES, backend

from bigram.core.backend import STATE_KEYS, WEIGHT_KEY, AdamWConfig
from bigram.core.plugins import load_backends
from bigram.core.sampling import draw_coins, init_weights
from bigram.core.train import TrainConfig, train


def test_both_builtins_are_found_through_entry_points():
    reg = load_backends()
    assert {"numpy", "torch"} <= set(reg.backends)
    assert reg.backends["numpy"].dist == "bigram" and reg.backends["torch"].dist == "bigram"
    assert reg.errors == []


@pytest.mark.parametrize("name", BACKENDS)
def test_declared_capabilities_match_the_model(name):
    """A backend that declares a capability has the method behind it, and one with the method declares it."""
    from backends import capabilities

    caps = capabilities(name)
    m = backend(name).create(init_weights(3, 0), device="cpu")
    for cap, method in (("grads", "grads"), ("set_lr", "set_lr"), ("counts", "train_step_counts")):
        assert (cap in caps) == callable(getattr(m, method, None)), (cap, method)
    if "float64" in caps:
        assert backend(name).create(init_weights(3, 0), device="cpu", dtype="float64").get_state()[WEIGHT_KEY].dtype == np.float64


def test_initial_weights_are_standard_normal_and_seeded():
    w = init_weights(65, 1337)
    assert w.shape == (65, 65) and w.dtype == np.float32
    assert np.array_equal(w, init_weights(65, 1337)) and not np.array_equal(w, init_weights(65, 1338))
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05


@pytest.mark.parametrize("name", BACKENDS)
def test_forward_returns_btc_logits_with_or_without_targets(name):
    m = backend(name).create(init_weights(7, 0), device="cpu")
    idx = np.array([[0, 1, 2], [3, 4, 5]])
    logits, loss = m.forward(idx)
    assert logits.shape == (2, 3, 7) and loss is None
    logits2, loss2 = m.forward(idx, idx)
    assert logits2.shape == (2, 3, 7) and isinstance(loss2, float)
    assert np.allclose(logits, m.get_state()[WEIGHT_KEY][idx])


@pytest.mark.parametrize("name", CANDIDATES)
def test_training_curves_agree_within_float32_tolerance(name, shakespeare):
    """300 default (counts, cosine) steps; losses and state as numpy's (textbook for a backend without counts)."""
    cfg = TrainConfig(steps=300, eval_interval=100)
    losses = {}
    for b in ("numpy", name):
        m = backend(b).create(init_weights(65, cfg.seed), device="cpu", optim=cfg.optim)
        r = train(m, shakespeare, cfg, backend=b, log=lambda s: None, progress=False)
        losses[b] = (r.train_loss, r.val_loss, m.get_state())
    assert abs(losses["numpy"][0] - losses[name][0]) < 1e-4
    assert abs(losses["numpy"][1] - losses[name][1]) < 1e-4
    for k in STATE_KEYS:
        # float32 AdamW after 300 steps: both follow torch's formula, rounding differs slightly
        assert np.allclose(losses["numpy"][2][k], losses[name][2][k], atol=2e-4, rtol=1e-4), k


@pytest.mark.parametrize("name", CANDIDATES)
@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 5), (0.0, None)])
def test_same_weights_and_coins_give_the_same_text(name, temperature, top_k):
    w = init_weights(30, 4) * 3
    coins = draw_coins(9, 2, 400)
    idx = np.array([[1], [2]])
    a = backend("numpy").create(w).generate(idx, coins, temperature, top_k)
    b = backend(name).create(w, device="cpu").generate(idx, coins, temperature, top_k)
    assert a.shape == (2, 401)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", CANDIDATES)
def test_state_round_trips_through_every_backend(name):
    m = backend("numpy").create(init_weights(6, 0), optim=AdamWConfig(lr=0.1))
    x = np.array([[0, 1, 2, 3]]); y = np.array([[1, 2, 3, 4]])
    for _ in range(3):
        m.train_step(x, y)
    t = backend(name).create(init_weights(6, 99), device="cpu", optim=AdamWConfig(lr=0.1))
    t.set_state(m.get_state())
    for k in STATE_KEYS:
        assert np.array_equal(t.get_state()[k], m.get_state()[k]), k
    # one more identical step from the identical state
    assert abs(t.train_step(x, y) - m.train_step(x, y)) < 1e-6
    assert np.allclose(t.get_state()[WEIGHT_KEY], m.get_state()[WEIGHT_KEY], atol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_models_compute_in_the_dtype_asked_for(name):
    """--dtype float32 is float32 all the way (a model silently in float64 gives other numbers than
    the README's), and float64 where the backend declares it: logits, table and AdamW moments."""
    from backends import dtypes

    x, y = np.array([[0, 1, 2]]), np.array([[1, 2, 0]])
    for dtype in dtypes(name):
        m = backend(name).create(init_weights(3, 0), device="cpu", dtype=dtype)
        assert m.forward(x)[0].dtype == np.dtype(dtype), dtype
        m.train_step(x, y)
        state = m.get_state()
        assert {k: state[k].dtype for k in STATE_KEYS[:3]} == {k: np.dtype(dtype) for k in STATE_KEYS[:3]}, dtype
