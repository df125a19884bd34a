"""The NumPy reference: every op and its gradient written by hand.

Each op is a forward/backward pair whose comment states its shapes, in the
style of llm.c's train_gpt2.c. B = batch, T = time (block), V = vocab; the
table is (V,V), so C (channels) = V. This file never imports torch.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bigram.core.backend import DTYPES, WEIGHT_KEY, AdamWConfig
from bigram.core.errors import BigramError
from bigram.core.hookspecs import hookimpl
from bigram.core.sampling import sample_chain


# ----------------------------------------------------------------------------
# embedding: the whole model. Row i of W is the logits for "what follows i".


def embedding_forward(W, idx):
    """W (V,C), idx (B,T) -> out (B,T,C): row lookup."""
    return W[idx]


def embedding_backward(dout, idx, V):
    """dout (B,T,C), idx (B,T) -> dW (V,C).

    Every position that read row i adds its gradient into row i: np.add.at is
    an unbuffered scatter-add, so a token repeated in the batch is summed, not
    overwritten (dW[idx] += dout would keep only the last one).
    """
    C = dout.shape[-1]
    dW = np.zeros((V, C), dtype=dout.dtype)
    np.add.at(dW, idx.reshape(-1), dout.reshape(-1, C))
    return dW


# ----------------------------------------------------------------------------
# softmax / log-softmax over the last axis, stable for any logit scale.


def log_softmax_forward(logits):
    """logits (..., C) -> log-probabilities (..., C).

    Subtracting the row max first keeps exp() from overflowing: exp(z) <= 1.
    """
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax_forward(logits):
    """logits (..., C) -> probabilities (..., C), rows summing to 1."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------
# cross-entropy: mean negative log-likelihood of the targets.


def cross_entropy_forward(logits, targets):
    """logits (N,C), targets (N,) -> scalar mean NLL over the N positions."""
    logp = log_softmax_forward(logits)  # (N,C)
    return -logp[np.arange(len(targets)), targets].mean()


def cross_entropy_backward(logits, targets):
    """logits (N,C), targets (N,) -> dlogits (N,C) = (softmax - onehot) / N."""
    N = len(targets)
    dlogits = softmax_forward(logits)  # (N,C)
    dlogits[np.arange(N), targets] -= 1.0
    return dlogits / np.asarray(N, dtype=logits.dtype)


# ----------------------------------------------------------------------------
# AdamW, exactly as torch.optim.AdamW's single-tensor path computes it.


class AdamW:
    """Decoupled weight decay Adam (Loshchilov & Hutter), torch's order of operations.

    Per step t (1-based), with g the gradient:
        p   <- p * (1 - lr*wd)                       decay first, off the raw weights
        m   <- m + (1-b1) * (g - m)                  torch's lerp form of b1*m + (1-b1)*g
        v   <- b2*v + (1-b2) * g*g
        p   <- p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
    """

    def __init__(self, shape, dtype, cfg: AdamWConfig):
        self.cfg = cfg
        self.m = np.zeros(shape, dtype=dtype)  # exp_avg
        self.v = np.zeros(shape, dtype=dtype)  # exp_avg_sq
        self.t = 0

    def step(self, p, g):
        """In place: p (V,C) updated from g (V,C)."""
        c = self.cfg
        self.t += 1
        p *= 1 - c.lr * c.weight_decay
        self.m += (1 - c.beta1) * (g - self.m)
        self.v *= c.beta2
        self.v += (1 - c.beta2) * g * g
        bias1 = 1 - c.beta1**self.t
        bias2_sqrt = (1 - c.beta2**self.t) ** 0.5
        denom = np.sqrt(self.v) / bias2_sqrt + c.eps
        p += (-(c.lr / bias1) * self.m) / denom  # torch's addcdiv: p + value*m/denom


# ----------------------------------------------------------------------------
# the model


class NumpyBigram:
    """The reference bigram model: a (V,V) table, float32 or float64."""

    def __init__(self, weights: np.ndarray, dtype: str = "float32", optim: AdamWConfig = AdamWConfig()):
        self.dtype = dtype
        self.device = "cpu"
        self.W = np.array(weights, dtype=dtype)  # (V,V), a private copy
        self.vocab_size = self.W.shape[0]
        self.optim = AdamW(self.W.shape, self.W.dtype, optim)

    def forward(self, idx, targets=None):
        """idx (B,T) -> logits (B,T,V), loss (float) or None."""
        logits = embedding_forward(self.W, idx)  # (B,T,V)
        if targets is None:
            return logits, None
        B, T, C = logits.shape
        loss = cross_entropy_forward(logits.reshape(B * T, C), targets.reshape(B * T))
        return logits, float(loss)

    def loss_and_grad(self, idx, targets):
        """idx, targets (B,T) -> loss, dW (V,V)."""
        logits = embedding_forward(self.W, idx)  # (B,T,V)
        B, T, C = logits.shape
        flat, tflat = logits.reshape(B * T, C), targets.reshape(B * T)  # (B*T,V), (B*T,)
        loss = cross_entropy_forward(flat, tflat)
        dlogits = cross_entropy_backward(flat, tflat)  # (B*T,V)
        dW = embedding_backward(dlogits.reshape(B, T, C), idx, self.vocab_size)  # (V,V)
        return float(loss), dW

    def train_step(self, idx, targets):
        loss, dW = self.loss_and_grad(idx, targets)
        self.optim.step(self.W, dW)
        return loss

    def eval_counts(self, counts):
        """counts (V,V) -> exact mean NLL: -sum_ij C_ij log softmax(W_i)_j / sum C."""
        logp = log_softmax_forward(self.W.astype(np.float64))  # (V,V)
        n = counts.sum()
        return float(-(counts * logp).sum() / n) if n else float("nan")

    def next_token_probs(self, temperature=1.0, top_k=None):
        """(V,V) float64: row i = distribution of the token after i."""
        logits = self.W.astype(np.float64)
        if temperature == 0:  # greedy: all mass on the (first) argmax
            probs = np.zeros_like(logits)
            probs[np.arange(len(logits)), logits.argmax(axis=1)] = 1.0
            return probs
        logits = logits / temperature
        if top_k is not None and top_k < logits.shape[1]:
            kth = np.sort(logits, axis=1)[:, -top_k][:, None]  # (V,1) k-th largest per row
            logits = np.where(logits < kth, -np.inf, logits)  # ties with the k-th are kept
        return softmax_forward(logits)

    def generate(self, idx, coins, temperature=1.0, top_k=None):
        """idx (B,T), coins (B,N) -> (B,T+N); only the last token's row is read."""
        return sample_chain(self.next_token_probs(temperature, top_k), np.asarray(idx), coins)

    def get_state(self):
        return {
            WEIGHT_KEY: self.W.copy(),
            "adamw.exp_avg": self.optim.m.copy(),
            "adamw.exp_avg_sq": self.optim.v.copy(),
            "adamw.step": np.array(self.optim.t, dtype=np.int64),
        }

    def set_state(self, state):
        self.W[...] = state[WEIGHT_KEY]
        self.optim.m[...] = state["adamw.exp_avg"]
        self.optim.v[...] = state["adamw.exp_avg_sq"]
        self.optim.t = int(state["adamw.step"])

    def grads(self, idx, targets):
        """idx, targets (B,T) -> {loss, dlogits (B,T,V), dW (V,V)}; no update. For cross-checks."""
        logits = embedding_forward(self.W, idx)  # (B,T,V)
        B, T, C = logits.shape
        flat, tflat = logits.reshape(B * T, C), targets.reshape(B * T)  # (B*T,V), (B*T,)
        dlogits = cross_entropy_backward(flat, tflat).reshape(B, T, C)  # (B,T,V)
        dW = embedding_backward(dlogits, idx, self.vocab_size)  # (V,V)
        return {"loss": float(cross_entropy_forward(flat, tflat)), "dlogits": dlogits, "dW": dW}


class NumpyBackend:
    """Plugin entry: the hand-written reference."""

    name: ClassVar[str] = "numpy"
    description: ClassVar[str] = "hand-written NumPy reference (float32 or float64)"

    @classmethod
    def devices(cls):
        return ["cpu"]

    @classmethod
    def create(cls, weights, *, device="auto", dtype="float32", optim=AdamWConfig()):
        if device not in ("auto", "cpu"):
            raise BigramError(f"the numpy backend runs on cpu only, not {device!r}; use --device cpu or --backend torch")
        if dtype not in DTYPES:
            raise BigramError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        return NumpyBigram(weights, dtype=dtype, optim=optim)


@hookimpl
def bigram_backends():
    return [NumpyBackend]
