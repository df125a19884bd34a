"""The two built-in backends agree: same start, same batches, same losses, same text."""

import numpy as np
import pytest

from bigram.core.backend import STATE_KEYS, WEIGHT_KEY, AdamWConfig
from bigram.core.plugins import load_backends
from bigram.core.sampling import draw_coins, init_weights
from bigram.core.train import TrainConfig, train

torch = pytest.importorskip("torch")


def backend(name):
    return load_backends().get(name).cls


def test_both_builtins_are_found_through_entry_points():
    reg = load_backends()
    assert {"numpy", "torch"} <= set(reg.backends)
    assert reg.backends["numpy"].dist == "bigram"
    assert reg.errors == []


def test_initial_weights_are_standard_normal_and_seeded():
    w = init_weights(65, 1337)
    assert w.shape == (65, 65) and w.dtype == np.float32
    assert np.array_equal(w, init_weights(65, 1337)) and not np.array_equal(w, init_weights(65, 1338))
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_forward_returns_btc_logits_with_or_without_targets(name):
    m = backend(name).create(init_weights(7, 0), device="cpu")
    idx = np.array([[0, 1, 2], [3, 4, 5]])
    logits, loss = m.forward(idx)
    assert logits.shape == (2, 3, 7) and loss is None
    logits2, loss2 = m.forward(idx, idx)
    assert logits2.shape == (2, 3, 7) and isinstance(loss2, float)
    assert np.allclose(logits, m.get_state()[WEIGHT_KEY][idx])


def test_training_curves_agree_within_float32_tolerance(shakespeare):
    cfg = TrainConfig(steps=300, eval_interval=100)
    losses = {}
    for name in ("numpy", "torch"):
        m = backend(name).create(init_weights(65, cfg.seed), device="cpu", optim=cfg.optim)
        r = train(m, shakespeare, cfg, backend=name, log=lambda s: None, progress=False)
        losses[name] = (r.train_loss, r.val_loss, m.get_state())
    assert abs(losses["numpy"][0] - losses["torch"][0]) < 1e-4
    assert abs(losses["numpy"][1] - losses["torch"][1]) < 1e-4
    for k in STATE_KEYS:
        # float32 AdamW after 300 steps: both follow torch's formula, rounding differs slightly
        assert np.allclose(losses["numpy"][2][k], losses["torch"][2][k], atol=2e-4, rtol=1e-4), k


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 5), (0.0, None)])
def test_same_weights_and_coins_give_the_same_text(temperature, top_k):
    w = init_weights(30, 4) * 3
    coins = draw_coins(9, 2, 400)
    idx = np.array([[1], [2]])
    a = backend("numpy").create(w).generate(idx, coins, temperature, top_k)
    b = backend("torch").create(w, device="cpu").generate(idx, coins, temperature, top_k)
    assert a.shape == (2, 401)
    assert np.array_equal(a, b)


def test_state_round_trips_through_both_backends():
    m = backend("numpy").create(init_weights(6, 0), optim=AdamWConfig(lr=0.1))
    x = np.array([[0, 1, 2, 3]]); y = np.array([[1, 2, 3, 4]])
    for _ in range(3):
        m.train_step(x, y)
    t = backend("torch").create(init_weights(6, 99), device="cpu", optim=AdamWConfig(lr=0.1))
    t.set_state(m.get_state())
    for k in STATE_KEYS:
        assert np.array_equal(t.get_state()[k], m.get_state()[k]), k
    # one more identical step from the identical state
    assert abs(t.train_step(x, y) - m.train_step(x, y)) < 1e-6
    assert np.allclose(t.get_state()[WEIGHT_KEY], m.get_state()[WEIGHT_KEY], atol=1e-6)
