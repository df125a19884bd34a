"""The NumPy reference: every op and its gradient written by hand.

Each op is a forward/backward pair whose comment states its shapes, in the
style of llm.c's train_gpt2.c. B = batch, T = time (block), V = vocab; the
table is (V,V), so C (channels) = V. This file never imports torch.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from bigram.core.backend import CAPABILITIES, WEIGHT_KEY, AdamWConfig, check_dtype
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
# cross-entropy from bigram counts: a batch enters the loss only through the
# counts c[i,j] of its (x[b,t], y[b,t]) pairs, so a step costs O(V*C), not O(B*T*C).


def counts_cross_entropy_forward(W, counts):
    """W (V,C) logits table, counts (V,C) of the batch's pairs -> scalar mean NLL.

    Each position (b,t) adds -log softmax(W[x])[y]; grouping equal pairs gives
    -sum_ij c_ij log softmax(W_i)_j / N, with N = sum c = B*T positions.
    """
    logp = log_softmax_forward(W)  # (V,C)
    return -(counts * logp).sum() / counts.sum()


def counts_cross_entropy_backward(W, counts):
    """W (V,C), counts (V,C) -> dW (V,C) = (n_i softmax(W_i) - c_i) / N, n_i = sum_j c_ij.

    The same sum embedding_backward(cross_entropy_backward(...)) scatters position
    by position: each of the n_i positions that read row i adds softmax(W_i), and
    each pair (i,j) subtracts 1 at column j. Same gradient, not an approximation.
    """
    n = counts.sum(axis=1, keepdims=True)  # (V,1)
    return (n * softmax_forward(W) - counts) / counts.sum()


class CountsCrossEntropy:
    """The pair above fused for the training loop: one exp, no new (V,C) arrays per step.

    forward keeps exp(W - shift) and the row sums; backward turns them into dW
    in the same buffer. Same math as the pair above (tests check it). At V=65
    numpy's per-row reductions cost more than the arithmetic, so rows are
    summed by a matrix-vector product and shifted by the table's max, not each
    row's: still exp <= 1, and a row far below the max falls back to its own.
    """

    def __init__(self, shape, dtype):
        self.e = np.empty(shape, dtype=dtype)  # (V,C) exp(W - shift), then dW
        self.ones = np.ones(shape[1], dtype=dtype)  # (C,) row sums as a matvec
        self.tiny = np.finfo(dtype).tiny ** 0.5  # a row sum below this lost its small terms

    def forward(self, W, counts, n=None, N=None):
        """W (V,C), counts (V,C) -> loss; log softmax(W_i)_j = z_ij - log(se_i).

        n (V,) and N, the row sums and total of counts, may be passed in precomputed.
        """
        e = self.e
        np.subtract(W, W.max(), e)  # (V,C) z <= 0: exp cannot overflow
        cz = np.vdot(counts, e)  # sum_ij c_ij z_ij
        np.exp(e, e)  # (V,C)
        self.se = e @ self.ones  # (V,) softmax denominators
        if self.se.min() < self.tiny:  # some row sits far below the max: shift each row by its own
            np.subtract(W, W.max(axis=1, keepdims=True), out=self.e)  # (V,C)
            cz = np.vdot(counts, self.e)
            np.exp(self.e, out=self.e)
            self.se = self.e @ self.ones
        self.n = counts @ self.ones if n is None else n  # (V,) positions that read row i
        self.N = self.n.sum() if N is None else N  # B*T
        return float((self.n @ np.log(self.se) - cz) / self.N)

    def backward(self, counts, scaled=True):
        """-> dW (V,C) = (n_i e_i / se_i - c_i) / N, in the forward's buffer.

        scaled=False leaves out the 1/N (the caller folds it in: AdamW.step_inplace's scale).
        """
        e = self.e
        np.multiply(e, (self.n / self.se)[:, None], e)  # (V,C) n_i softmax(W_i)
        e -= counts
        if scaled:
            e *= 1 / self.N
        return e


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
        self.lr = cfg.lr  # set_lr changes it: a schedule's lr, step by step
        self.m = np.zeros(shape, dtype=dtype)  # exp_avg
        self.v = np.zeros(shape, dtype=dtype)  # exp_avg_sq
        self.t = 0

    def step(self, p, g):
        """In place: p (V,C) updated from g (V,C)."""
        c, lr = self.cfg, self.lr
        self.t += 1
        p *= 1 - lr * c.weight_decay
        self.m += (1 - c.beta1) * (g - self.m)
        self.v *= c.beta2
        self.v += (1 - c.beta2) * g * g
        bias1 = 1 - c.beta1**self.t
        bias2_sqrt = (1 - c.beta2**self.t) ** 0.5
        denom = np.sqrt(self.v) / bias2_sqrt + c.eps
        p += (-(lr / bias1) * self.m) / denom  # torch's addcdiv: p + value*m/denom

    def step_inplace(self, p, g, scale=1.0):
        """step() with no new arrays, for the gradient g * scale: a scratch buffer, g overwritten.

        Same update; the gradient's scale is folded into the moment updates
        (saving the caller a pass), and m/(sqrt(v)/b2 + eps) is computed as
        m*b2/(sqrt(v) + eps*b2), b2 = sqrt(1-beta2^t): differences in rounding only.
        """
        c, m, v, lr = self.cfg, self.m, self.v, self.lr
        self.t += 1
        s = getattr(self, "_scratch", None)
        if s is None:
            s = self._scratch = np.empty_like(m)  # (V,C)
        bias1 = 1 - c.beta1**self.t
        bias2_sqrt = (1 - c.beta2**self.t) ** 0.5
        p *= 1 - lr * c.weight_decay
        m *= c.beta1
        np.multiply(g, (1 - c.beta1) * scale, s)
        m += s  # b1 m + (1-b1) g
        v *= c.beta2
        np.multiply(g, g, g)
        g *= (1 - c.beta2) * scale * scale
        v += g  # b2 v + (1-b2) g^2
        np.sqrt(v, s)
        s += c.eps * bias2_sqrt
        np.divide(m, s, s)
        s *= -(lr * bias2_sqrt / bias1)
        p += s


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
        """idx, targets (B,T) -> loss, dW (V,V): the forward and backward of grads() below."""
        g = self.grads(idx, targets)
        return g["loss"], g["dW"]

    def train_step(self, idx, targets):
        loss, dW = self.loss_and_grad(idx, targets)
        self.optim.step(self.W, dW)
        return loss

    def set_lr(self, lr):
        """The learning rate of the following steps (core's schedule sets it before each one)."""
        self.optim.lr = lr

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
        # Shift each row's max to 0 before dividing: no logit/T can overflow to +inf (NaN after
        # softmax), and a T so small that (l - max)/T overflows to -inf is exactly the T -> 0 limit.
        with np.errstate(over="ignore"):
            logits = (logits - logits.max(axis=1, keepdims=True)) / temperature  # (V,V), each row's max 0
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

    def loss_and_grad_counts(self, counts):
        """counts (V,V) of a batch's (x,y) pairs -> loss, dW (V,V): loss_and_grad's values."""
        counts = np.asarray(counts, dtype=self.W.dtype)
        loss = counts_cross_entropy_forward(self.W, counts)
        return float(loss), counts_cross_entropy_backward(self.W, counts)

    def train_step_counts(self, counts, row_sums=None, total=None):
        """train_step from the batch's counts (V,V), in the model's dtype: O(V^2), in place.

        row_sums (V,) and total (N), when the caller has them, spare two reductions.
        """
        ce = getattr(self, "_counts_ce", None)
        if ce is None:
            ce = self._counts_ce = CountsCrossEntropy(self.W.shape, self.W.dtype)
        loss = ce.forward(self.W, counts, row_sums, total)
        self.optim.step_inplace(self.W, ce.backward(counts, scaled=False), 1 / ce.N)
        return loss


class NumpyBackend:
    """Plugin entry: the hand-written reference."""

    name: ClassVar[str] = "numpy"
    description: ClassVar[str] = "hand-written NumPy reference (float32 or float64)"
    capabilities: ClassVar[frozenset[str]] = CAPABILITIES

    @classmethod
    def devices(cls):
        return ["cpu"]

    @classmethod
    def create(cls, weights, *, device="auto", dtype="float32", optim=AdamWConfig()):
        if device not in ("auto", "cpu"):
            raise BigramError(f"the numpy backend runs on cpu only, not {device!r}; use --device cpu or --backend torch")
        check_dtype(dtype)
        return NumpyBigram(weights, dtype=dtype, optim=optim)


@hookimpl
def bigram_backends():
    return [NumpyBackend]
