"""Learning-rate schedules: the formula against torch's own scheduler, then every backend on a scheduled run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from backends import BACKENDS, CANDIDATES, backend, params
from hypothesis import given
from hypothesis import strategies as st

from bigram.backends.numpy_backend import NumpyBackend
from bigram.core.backend import AdamWConfig
from bigram.core.data import Batcher
from bigram.core.errors import BigramError
from bigram.core.fast import make_step
from bigram.core.sampling import init_weights
from bigram.core.schedule import LRSchedule
from bigram.core.train import TrainConfig, make_train_batcher, train

torch = pytest.importorskip("torch")
from bigram.bench import lecture  # noqa: E402


@given(lr=st.floats(1e-4, 1.0), ratio=st.floats(0.0, 1.0), decay=st.integers(1, 5000), step=st.integers(0, 6000))
def test_cosine_stays_between_its_ends_and_never_rises(lr, ratio, decay, step):
    s = LRSchedule("cosine", lr, lr * ratio, decay)
    assert s.min_lr - 1e-12 <= s(step) <= lr + 1e-12
    assert s(step + 1) <= s(step) + 1e-12


def test_cosine_ends():
    s = LRSchedule("cosine", 0.1, 0.01, 100)
    assert s(0) == 0.1
    assert s(50) == pytest.approx(0.055, abs=1e-15)  # halfway: the mean of the ends
    assert s(100) == s(10**9) == 0.01  # then it stays at min_lr
    assert LRSchedule("constant", 0.1, 0.01, 100)(60) == 0.1


def test_cosine_is_torchs_cosine_annealing():
    """The same lr sequence as torch.optim.lr_scheduler.CosineAnnealingLR (which computes it recursively)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=0.1)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=300, eta_min=0.01)
    ours = LRSchedule("cosine", 0.1, 0.01, 300)
    for step in range(300):
        # rtol: torch's recursion accumulates float64 rounding over the steps
        assert opt.param_groups[0]["lr"] == pytest.approx(ours(step), rel=1e-9), step
        opt.step()
        ref.step()


class _Recorder:
    """A model that only records the lr it is given before each step."""

    vocab_size, dtype = 4, "float32"

    def __init__(self):
        self.lrs = []

    def set_lr(self, lr):
        self.lrs.append(lr)

    def train_step(self, idx, targets):
        return 0.0


def test_make_step_sets_each_steps_lr_from_start():
    model, s = _Recorder(), LRSchedule("cosine", 0.1, 0.0, 10)
    step = make_step(model, Batcher(np.arange(100) % 4, 2, 3, 0), "textbook", s, start=4)
    for _ in range(8):
        step()
    assert model.lrs == [s(t) for t in range(4, 12)]


def test_a_constant_schedule_sets_its_lr_once():
    """A model that followed a schedule before must not keep its last lr for a constant run."""
    model = _Recorder()
    step = make_step(model, Batcher(np.arange(100) % 4, 2, 3, 0), "textbook", LRSchedule("constant", 0.05, 0.05, 1))
    step()
    step()
    assert model.lrs == [0.05]


def test_a_model_without_set_lr_trains_constant_and_refuses_a_schedule():
    model = _Recorder()
    model.set_lr = None  # a backend written before schedules existed
    batcher = Batcher(np.arange(100) % 4, 2, 3, 0)
    make_step(model, batcher, "textbook")()  # no schedule: fine
    with pytest.raises(BigramError, match="--lr-schedule constant"):
        make_step(model, batcher, "textbook", LRSchedule("cosine", 0.1, 0.01, 10))


@pytest.mark.parametrize("method", ["counts", "textbook"])
@pytest.mark.parametrize("name", params(CANDIDATES, "set_lr"))
def test_every_backend_follows_the_schedule_like_numpy(name, method, shakespeare):
    """A scheduled run (lr 0.1 -> 0.01) on each backend: numpy's weights within float32 tolerance,
    and not those of a constant-lr run (the schedule is applied, not ignored)."""
    V = shakespeare.tokenizer.vocab_size
    cfg = TrainConfig(steps=60, batch_size=8, block_size=8, eval_interval=60, method=method)
    W = {}
    for b in ("numpy", name):
        m = backend(b).create(init_weights(V, 3), device="cpu", optim=cfg.optim)
        train(m, shakespeare, cfg, backend=b, progress=False, log=lambda msg: None)
        W[b] = m.get_state()["token_embedding_table.weight"]
    # float32, 60 AdamW steps from the same table: each step moves a weight by at most ~lr, and the
    # backends' roundings differ by ~1e-7 per op; 1e-4 is far below the ~1e-2 a different lr gives.
    np.testing.assert_allclose(W[name], W["numpy"], rtol=0, atol=1e-4)
    const = NumpyBackend.create(init_weights(V, 3), optim=cfg.optim)
    flat = TrainConfig(steps=60, batch_size=8, block_size=8, eval_interval=60, method=method, lr_schedule="constant")
    train(const, shakespeare, flat, backend="numpy", progress=False, log=lambda msg: None)
    assert np.abs(const.get_state()["token_embedding_table.weight"] - W["numpy"]).max() > 1e-2


@pytest.mark.parametrize("name", params(BACKENDS, "counts", "set_lr", "float64"))
def test_counts_path_matches_the_lecture_with_torchs_scheduler(name, shakespeare):
    """Independent oracle: the lecture's model and torch's AdamW, stepped by CosineAnnealingLR, on the same batches."""
    V = shakespeare.tokenizer.vocab_size
    cfg = TrainConfig(steps=40, batch_size=8, block_size=8, eval_interval=40)
    w0 = init_weights(V, 5)
    ours = backend(name).create(w0, device="cpu", dtype="float64", optim=cfg.optim)
    step = make_step(ours, make_train_batcher(shakespeare, cfg), "counts", cfg.schedule(cfg.steps))
    ref = lecture.BigramLanguageModel(V).double()
    with torch.no_grad():
        ref.token_embedding_table.weight.copy_(torch.from_numpy(w0))
    opt = torch.optim.AdamW(ref.parameters(), lr=cfg.optim.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=cfg.optim.lr / 10)
    batcher = make_train_batcher(shakespeare, cfg)
    for _ in range(cfg.steps):
        step()
        x, y = (torch.from_numpy(a.astype(np.int64)) for a in batcher.get_batch())
        _, loss = ref(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    # float64 on both sides; the counts path sums the gradient in another order: ~1e-15 per step
    got = ours.get_state()["token_embedding_table.weight"]
    np.testing.assert_allclose(got, ref.token_embedding_table.weight.detach().numpy(), rtol=0, atol=1e-9)


def test_default_schedule_is_cosine_to_a_tenth():
    s = TrainConfig().schedule(1500)
    assert (s.kind, s.decay_steps) == ("cosine", 1500) and math.isclose(s.min_lr, s.lr / 10)
    assert TrainConfig().resolved(1500).decay_steps == 1500
    assert TrainConfig(lr_schedule="constant").resolved(1500).decay_steps is None


def test_adamw_config_default_lr_is_the_trainings():
    assert AdamWConfig().lr == TrainConfig().optim.lr

