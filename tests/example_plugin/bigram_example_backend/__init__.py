"""An example third-party bigram backend: the bigram model as one-hot matrix products.

A genuinely different formulation from bigram's NumPy reference, so that
`bigram check --backends numpy,example` compares two implementations:

    X       = onehot(idx)                        (B,T,V)   instead of a row lookup
    logits  = X @ W                              (B,T,V)
    logp    = logits - logaddexp.reduce(logits)  (B,T,V)   instead of max-shift softmax
    dlogits = (exp(logp) - onehot(targets)) / N  (B,T,V)
    dW      = X^T @ dlogits                      (V,V)     the matmul sums repeated tokens
    AdamW   in the textbook form of torch's docs: m_hat / (sqrt(v_hat) + eps).

Everything runs in the requested dtype (float32 or float64) on the CPU;
einsum(optimize=True) hands the products to BLAS.

BIGRAM_EXAMPLE_SLOW_S=0.001 (seconds, read when a model is created) adds a
sleep to every training step and every generate call: a deliberately slowed
backend, for showing that `bigram bench --compare` flags a regression.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from bigram.core.backend import DTYPES, WEIGHT_KEY, AdamWConfig
from bigram.core.errors import BigramError
from bigram.core.hookspecs import hookimpl
from bigram.core.sampling import sample_chain

__version__ = "0.1.0"
SLOW_ENV = "BIGRAM_EXAMPLE_SLOW_S"


def slowdown() -> float:
    """The seconds $BIGRAM_EXAMPLE_SLOW_S asks to add to each step and generate call (0 when unset)."""
    raw = os.environ.get(SLOW_ENV, "").strip()
    try:
        value = float(raw) if raw else 0.0
    except ValueError:
        value = -1.0
    if not (0 <= value < 60):
        raise BigramError(f"{SLOW_ENV}={raw!r} is not a number of seconds in [0, 60); e.g. {SLOW_ENV}=0.001")
    return value


def onehot(ids, V, dtype):
    """ids (...) -> (..., V) with a 1 at each id."""
    return np.eye(V, dtype=dtype)[np.asarray(ids, dtype=np.int64)]


def log_softmax(logits):
    """(..., V) -> (..., V); logaddexp.reduce is stable without an explicit max shift."""
    return logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)


class EinsumBigram:
    """The bigram model through einsum: a (V,V) table, its AdamW state, float32 or float64."""

    def __init__(self, weights, dtype="float64", optim=AdamWConfig()):
        self.dtype, self.device = dtype, "cpu"
        self.W = np.array(weights, dtype=dtype)  # (V,V)
        self.vocab_size = self.W.shape[0]
        self.cfg = optim
        self.m, self.v, self.t = np.zeros_like(self.W), np.zeros_like(self.W), 0
        self.slow_s = slowdown()

    def forward(self, idx, targets=None):
        X = onehot(idx, self.vocab_size, self.W.dtype)  # (B,T,V)
        logits = np.einsum("btv,vc->btc", X, self.W, optimize=True)  # (B,T,V)
        if targets is None:
            return logits, None
        logp = log_softmax(logits)  # (B,T,V)
        picked = np.einsum("btc,btc->bt", logp, onehot(targets, self.vocab_size, logp.dtype), optimize=True)  # (B,T)
        return logits, float(-picked.mean())

    def grads(self, idx, targets):
        X = onehot(idx, self.vocab_size, self.W.dtype)  # (B,T,V)
        logits, loss = self.forward(idx, targets)
        N = np.asarray(X.shape[0] * X.shape[1], dtype=self.W.dtype)
        dlogits = (np.exp(log_softmax(logits)) - onehot(targets, self.vocab_size, self.W.dtype)) / N  # (B,T,V)
        dW = np.einsum("btv,btc->vc", X, dlogits, optimize=True)  # (V,V)
        return {"loss": loss, "dlogits": dlogits, "dW": dW}

    def loss_and_grad(self, idx, targets):
        g = self.grads(idx, targets)
        return g["loss"], g["dW"]

    def train_step(self, idx, targets):
        if self.slow_s:
            time.sleep(self.slow_s)
        loss, g = self.loss_and_grad(idx, targets)
        c = self.cfg
        self.t += 1
        self.W -= c.lr * c.weight_decay * self.W
        self.m = c.beta1 * self.m + (1 - c.beta1) * g
        self.v = c.beta2 * self.v + (1 - c.beta2) * g * g
        m_hat = self.m / (1 - c.beta1**self.t)
        v_hat = self.v / (1 - c.beta2**self.t)
        self.W -= c.lr * m_hat / (np.sqrt(v_hat) + c.eps)
        return loss

    def set_lr(self, lr):
        """Called by bigram's lr schedule before each step."""
        self.cfg = replace(self.cfg, lr=lr)

    def eval_counts(self, counts):
        n = counts.sum()
        return float(-(counts * log_softmax(self.W.astype(np.float64))).sum() / n) if n else float("nan")

    def next_token_probs(self, temperature=1.0, top_k=None):
        logits = self.W.astype(np.float64)  # (V,V)
        if temperature == 0:
            return onehot(logits.argmax(axis=1), self.vocab_size, np.float64)
        with np.errstate(over="ignore"):  # row max shifted to 0 first: a tiny T gives -inf, not inf - inf
            logits = (logits - logits.max(axis=1, keepdims=True)) / temperature
        if top_k is not None and top_k < self.vocab_size:
            kth = -np.partition(-logits, top_k - 1, axis=1)[:, top_k - 1 : top_k]  # (V,1)
            logits = np.where(logits >= kth, logits, -np.inf)  # ties with the k-th stay
        return np.exp(log_softmax(logits))

    def generate(self, idx, coins, temperature=1.0, top_k=None):
        if self.slow_s:
            time.sleep(self.slow_s)
        return sample_chain(self.next_token_probs(temperature, top_k), np.asarray(idx), coins)

    def get_state(self):
        return {WEIGHT_KEY: self.W.copy(), "adamw.exp_avg": self.m.copy(), "adamw.exp_avg_sq": self.v.copy(),
                "adamw.step": np.array(self.t, dtype=np.int64)}

    def set_state(self, state):
        self.W[...] = state[WEIGHT_KEY]
        self.m = np.array(state["adamw.exp_avg"], dtype=self.W.dtype)
        self.v = np.array(state["adamw.exp_avg_sq"], dtype=self.W.dtype)
        self.t = int(state["adamw.step"])


class ExampleBackend:
    name = "example"
    description = "example third-party plugin: one-hot einsum formulation (NumPy, cpu)"
    # What it can do beyond the required methods (bigram.core.backend.CAPABILITY_DOCS);
    # no "counts": it trains the textbook way, and the tests of the counts path skip it.
    capabilities = frozenset({"float64", "grads", "set_lr", "exact_resume"})

    @classmethod
    def devices(cls):
        return ["cpu"]

    @classmethod
    def create(cls, weights, *, device="auto", dtype="float32", optim=AdamWConfig()):
        if device not in ("auto", "cpu"):
            raise BigramError(f"the example backend runs on cpu only, not {device!r}; use --device cpu")
        if dtype not in DTYPES:
            raise BigramError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        return EinsumBigram(weights, dtype=dtype, optim=optim)


@hookimpl
def bigram_backends():
    return [ExampleBackend]
