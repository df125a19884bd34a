"""bigram-jax's own promises, beyond the shared suite (bigram's tests/ run it like every backend):
x64 stays scoped, float32 stays float32, devices fail with one line, the entry module stays light,
and a schedule or a new config costs no recompile."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("bigram_jax")  # pip install -e plugins/bigram-jax
import jax.numpy as jnp  # noqa: E402

from bigram.core.backend import WEIGHT_KEY, AdamWConfig  # noqa: E402
from bigram.core.errors import BigramError  # noqa: E402
from bigram_jax import JaxBackend  # noqa: E402
from bigram_jax import model as M  # noqa: E402


def table(V=5, seed=0):
    return np.random.default_rng(seed).standard_normal((V, V)).astype(np.float32)


def batch(V=5, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (3, 4)), rng.integers(0, V, (3, 4))


def test_float64_does_not_leak_into_the_users_jax():
    before = jax.config.jax_enable_x64
    m = JaxBackend.create(table(), device="cpu", dtype="float64")
    m.train_step(*batch())
    m.train_step_counts(np.ones((5, 5)))
    assert m.get_state()[WEIGHT_KEY].dtype == np.float64
    assert jax.config.jax_enable_x64 == before
    assert jnp.zeros(2).dtype == (jnp.float64 if before else jnp.float32)  # the user's default, untouched


@pytest.mark.parametrize("user_x64", [False, True])
def test_float32_stays_float32_whatever_the_users_x64_setting(user_x64):
    with jax.enable_x64(user_x64):
        m = JaxBackend.create(table(), device="cpu", dtype="float32")
        x, y = batch()
        logits, loss = m.forward(x, y)
        g = m.grads(x, y)
        m.set_lr(0.05)
        m.train_step_counts(np.ones((5, 5), dtype=np.float64))  # a float64 input is cast, not promoted to
        m.train_step(x, y)
        state = m.get_state()
    assert logits.dtype == g["dW"].dtype == g["dlogits"].dtype == np.float32
    assert float(np.float32(loss)) == loss  # a float32 number
    for key in (WEIGHT_KEY, "adamw.exp_avg", "adamw.exp_avg_sq"):
        assert state[key].dtype == np.float32, key
    assert int(state["adamw.step"]) == 2


@pytest.mark.parametrize(("device", "message"), [
    ("xpu", "unknown device 'xpu'; use auto, cpu or cuda"),
    ("cuda:x", "unknown device 'cuda:x'"),
    ("cpu:7", "jax sees 1 cpu device(s); use cpu:0"),
])
def test_a_bad_device_is_a_one_line_error(device, message):
    with pytest.raises(BigramError, match=message.replace("(", r"\(").replace(")", r"\)")):
        JaxBackend.create(table(), device=device)


@pytest.mark.skipif("cuda" in JaxBackend.devices(), reason="jax sees a GPU here")
def test_cuda_without_a_gpu_names_the_fix():
    with pytest.raises(BigramError, match="jax sees no cuda device here; use --device cpu or auto"):
        JaxBackend.create(table(), device="cuda")
    assert JaxBackend.devices() == ["cpu"]


def test_the_entry_module_does_not_import_jax():
    code = "import sys, bigram_jax; bigram_jax.bigram_backends(); print('jax' in sys.modules, 'optax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_a_schedule_and_a_new_config_reuse_the_compiled_step():
    """The hyperparameters are traced, not baked in: one program per shape and dtype."""
    c = np.random.default_rng(0).poisson(1.0, (5, 5)).astype(np.float32)
    m = JaxBackend.create(table(), device="cpu")
    m.train_step_counts(c)
    compiled = M._step_counts._cache_size()
    for lr in (0.05, 0.01, 0.003):
        m.set_lr(lr)
        m.train_step_counts(c)
    other = JaxBackend.create(table(seed=1), device="cpu", optim=AdamWConfig(lr=0.3, beta1=0.5, beta2=0.9, eps=1e-6,
                                                                              weight_decay=0.2))
    other.train_step_counts(c)
    assert M._step_counts._cache_size() == compiled


def test_set_lr_changes_the_step():
    c = np.random.default_rng(0).poisson(1.0, (5, 5)).astype(np.float64)
    a, b = (JaxBackend.create(table(), device="cpu", dtype="float64") for _ in range(2))
    b.set_lr(0.01)
    a.train_step_counts(c), b.train_step_counts(c)
    moved = [np.abs(m.get_state()[WEIGHT_KEY] - table()).max() for m in (a, b)]
    # AdamW's first step moves each weight by about lr (plus lr * wd * w): 0.1 against 0.01
    assert 0.09 < moved[0] < 0.15 and 0.009 < moved[1] < 0.015


def test_prepare_training_compiles_the_counts_step_and_moves_nothing():
    m = JaxBackend.create(table(V=7), device="cpu")
    before = m.get_state()
    m.prepare_training()
    after = m.get_state()
    for key in before:
        assert np.array_equal(before[key], after[key]), key
    compiled = M._step_counts._cache_size()
    m.train_step_counts(np.ones((7, 7), dtype=np.float32))
    assert M._step_counts._cache_size() == compiled  # the first real step found it compiled
    assert int(m.get_state()["adamw.step"]) == 1
