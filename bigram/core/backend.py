"""The backend protocol: what core asks of a model implementation.

Everything crosses this boundary as NumPy arrays and Python floats, so core,
the cross-checks and the CLI never touch a framework's tensors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from bigram.core.defaults import DEFAULT_LR

WEIGHT_KEY = "token_embedding_table.weight"  # the lecture's state_dict key
DTYPES = ("float32", "float64")


def check_dtype(dtype: str) -> None:
    """Every backend accepts the same dtypes, with the same one-line error."""
    if dtype not in DTYPES:
        from bigram.core.errors import BigramError

        raise BigramError(f"unknown --dtype {dtype!r}; use one of {', '.join(DTYPES)}")


@dataclass(frozen=True)
class AdamWConfig:
    """AdamW hyperparameters; defaults are torch.optim.AdamW's, except lr (the project's default)."""

    lr: float = DEFAULT_LR
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01

    def to_json(self) -> dict:
        return asdict(self)


@runtime_checkable
class Model(Protocol):
    """A bigram model built by a backend: a (V,V) table of next-token logits."""

    vocab_size: int
    device: str
    dtype: str

    def forward(self, idx: np.ndarray, targets: np.ndarray | None = None) -> tuple[np.ndarray, float | None]:
        """idx (B,T) -> logits (B,T,V) and the mean cross-entropy against targets (B,T), or None."""
        ...

    def loss_and_grad(self, idx: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """The loss and its gradient with respect to the table, (V,V); no update."""
        ...

    def train_step(self, idx: np.ndarray, targets: np.ndarray) -> float:
        """Forward, backward and one AdamW update; returns the loss before the update."""
        ...

    def prepare_training(self) -> None:
        """Set up what only training needs (the torch backend's optimizer), before the first step is timed.

        Optional: core's make_step calls it where it exists. A model builds such
        things lazily, so commands that never step (generate, eval) never pay for them.
        """
        ...

    def set_lr(self, lr: float) -> None:
        """The AdamW learning rate of the steps that follow (a schedule sets it before each step).

        Optional: a model without it trains with --lr-schedule constant only.
        """
        ...

    def eval_counts(self, counts: np.ndarray) -> float:
        """Exact mean cross-entropy over a split summarised by its (V,V) bigram counts."""
        ...

    def generate(
        self, idx: np.ndarray, coins: np.ndarray, temperature: float = 1.0, top_k: int | None = None
    ) -> np.ndarray:
        """Extend idx (B,T) by coins.shape[1] tokens, each picked by inverse CDF with one coin."""
        ...

    def get_state(self) -> dict[str, np.ndarray]:
        """Weights, AdamW moments and step, as NumPy arrays (see STATE_KEYS)."""
        ...

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what get_state returned."""
        ...

    def grads(self, idx: np.ndarray, targets: np.ndarray) -> dict:
        """{"loss": float, "dlogits": (B,T,V), "dW": (V,V)} for one batch; no update.

        Used by the cross-checks (`bigram check`) to compare the backward pass
        step by step. A backend without it is still checked, on dW alone.
        """
        ...

    def loss_and_grad_counts(self, counts: np.ndarray) -> tuple[float, np.ndarray]:
        """loss_and_grad for a batch given by its (V,V) bigram counts c[i,j] = #{(b,t): x=i, y=j}.

        Same values: loss = -sum(c * log_softmax(W)) / N, dW_i = (n_i softmax(W_i) - c_i) / N.
        """
        ...

    def train_step_counts(
        self, counts: np.ndarray, row_sums: np.ndarray | None = None, total: float | None = None
    ) -> float:
        """train_step from the batch's (V,V) counts, in the model's dtype: O(V^2) per step.

        row_sums (V,) = counts.sum(1) and total = counts.sum() may be passed precomputed.
        """
        ...


# get_state()/set_state() keys. The step is a 0-d int64 array.
STATE_KEYS = (WEIGHT_KEY, "adamw.exp_avg", "adamw.exp_avg_sq", "adamw.step")

# What a backend may or may not be able to do, beyond the required methods. A
# backend class declares the ones it supports in `capabilities`; the shared
# test suite skips, naming the capability, every test that needs one it lacks.
CAPABILITY_DOCS = {
    "float64": "create(dtype='float64') computes in float64",
    "grads": "Model.grads() returns dlogits as well as dW (bigram check compares both)",
    "set_lr": "Model.set_lr(): lr schedules (the default cosine one) work",
    "counts": "Model.train_step_counts() and loss_and_grad_counts(): the fast default training path",
    "exact_resume": "N steps, get_state, set_state on a new model, N more steps == 2N steps, bit for bit",
}
CAPABILITIES = frozenset(CAPABILITY_DOCS)


def backend_capabilities(cls) -> frozenset[str]:
    """The capabilities a backend class declares; one that declares none is probed on a 1x1 model.

    The probe finds the optional methods (grads, set_lr, counts) and assumes
    float64, which create() must accept; exact resume is never assumed.
    """
    declared = getattr(cls, "capabilities", None)
    if declared is not None:
        try:
            return frozenset(declared) & CAPABILITIES
        except TypeError:  # not a collection of names: declares nothing
            return frozenset()
    try:
        model = cls.create(np.zeros((1, 1), dtype=np.float32), device="auto", dtype="float32")
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - third-party code; the check itself will report it failing
        return frozenset()
    methods = {"grads": "grads", "set_lr": "set_lr", "counts": "train_step_counts"}
    return frozenset({"float64"} | {cap for cap, m in methods.items() if callable(getattr(model, m, None))})


class Backend(Protocol):
    """A backend class, as returned by the `bigram_backends` hook."""

    name: ClassVar[str]
    description: ClassVar[str]

    @classmethod
    def devices(cls) -> list[str]:
        """Devices this backend can run on here, e.g. ['cpu', 'cuda']."""
        ...

    @classmethod
    def create(
        cls, weights: np.ndarray, *, device: str = "auto", dtype: str = "float32", optim: AdamWConfig = AdamWConfig()
    ) -> Model:
        """A model whose table starts as `weights` (V,V)."""
        ...


def fresh_state(weights: np.ndarray) -> dict[str, np.ndarray]:
    """The state of a model that has taken no step: zero moments, step 0."""
    return {
        WEIGHT_KEY: weights,
        "adamw.exp_avg": np.zeros_like(weights),
        "adamw.exp_avg_sq": np.zeros_like(weights),
        "adamw.step": np.array(0, dtype=np.int64),
    }
