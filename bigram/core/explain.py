"""One real batch, step by step, as numbers: what `bigram explain` renders.

Forward, loss, backward, one AdamW update, sampling. Every number here comes
from the backend (forward, grads, train_step, next_token_probs, generate)
except the few worked by hand for one position or one weight (an NLL, a row of
dlogits, one AdamW update), which exist to be checked against the backend's.
Nothing is printed: bigram/core/explain_text.py renders the Explanation as
text, the CLI prints it, and tests read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bigram.core.backend import WEIGHT_KEY, AdamWConfig
from bigram.core.check import backend_grads  # the backend's grads(), or loss_and_grad() without dlogits
from bigram.core.data import Batcher, Corpus, check_ids
from bigram.core.sampling import draw_coins, seed_streams


@dataclass
class WorkedNLL:
    """-log softmax(logits)[target] for one position, done by hand in float64."""

    b: int
    t: int
    input_char: str
    target_char: str
    target_id: int
    logits: np.ndarray  # (C,) the row the embedding looked up
    max_logit: float  # subtracted first so exp() cannot overflow
    sum_exp: float  # sum_j exp(l_j - max)
    prob: float  # exp(l_y - max) / sum_exp
    nll_by_hand: float  # -log(prob)
    nll_backend: float  # the backend's cross-entropy on this one position


@dataclass
class Generation:
    """The last time step of the batch picks each row's next token."""

    last_logits_shape: tuple  # (B,C)
    last_chars: list[str]  # (B,) the token each row ends with
    probs: np.ndarray  # (B,C) softmax of the last step's logits
    coins: np.ndarray  # (B,) the uniforms the sampler used
    next_ids: np.ndarray  # (B,) sampled by the backend
    next_chars: list[str]


@dataclass(repr=False)
class Explanation:
    """Every number of the walk-through; print() it to read it (bigram/core/explain_text.py)."""

    backend: str
    weights: str  # "init (seed N)" or the checkpoint path
    vocab_size: int
    chars: list[str]  # (V,) each id decoded
    xb: np.ndarray  # (B,T)
    yb: np.ndarray  # (B,T)
    x_rows: list[str]  # (B,) decoded
    y_rows: list[str]
    pairs: list[tuple[str, str]]  # row 0's (context, target), T of them
    logits_shape: tuple  # (B,T,C)
    flat_shape: tuple  # (B*T,C)
    targets_shape: tuple  # (B*T,)
    lookup_matches: bool  # logits[b,t] == W[xb[b,t]] everywhere
    prob_row_sums: np.ndarray  # (B*T,)
    worked: WorkedNLL
    batch_loss: float  # the backend's cross-entropy over the batch
    batch_loss_by_hand: float  # mean of the B*T hand-worked NLLs
    expected_init_loss: float  # ln(V): every next token equally likely
    generation: Generation
    dlogits: "WorkedGrad | None" = None  # None: the backend has no grads() (a plugin may lack it)
    scatter: "ScatterAdd | None" = None
    adamw: "WorkedAdamW | None" = None

    def __str__(self) -> str:
        from bigram.core.explain_text import render_text

        return render_text(self)

    def __repr__(self) -> str:
        B, T, C = self.logits_shape
        return (f"Explanation(backend={self.backend!r}, weights={self.weights!r}, B={B}, T={T}, V={C}, "
                f"batch_loss={self.batch_loss:.6f}; print() it for the walk-through)")

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str(self))}</pre>"


def first_batch(corpus: Corpus, batch_size: int, block_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first training batch `bigram train --seed seed` would draw. (B,T), (B,T)."""
    corpus.check_block_size(block_size)
    batcher = Batcher(corpus.train, batch_size, block_size, seed_streams(seed)["train"])
    xb, yb = batcher.get_batch()
    for ids in (xb, yb):  # from a damaged token file: one line here, not an IndexError in the backend
        check_ids(ids, corpus.tokenizer.vocab_size)
    return xb.astype(np.int64), yb.astype(np.int64)


def nll_by_hand(logits: np.ndarray, target: int) -> tuple[float, float, float, float]:
    """logits (C,) -> (max, sum_exp, prob, nll) with plain float64 arithmetic, to be read."""
    row = [float(v) for v in logits]
    m = max(row)
    sum_exp = math.fsum(math.exp(v - m) for v in row)
    log_prob = (row[target] - m) - math.log(sum_exp)  # log softmax, stable form
    return m, sum_exp, math.exp(log_prob), -log_prob


def work_one(model, tok, xb, yb, logits, b: int = 0, t: int = 0) -> WorkedNLL:
    """Position (b,t) by hand, and the backend's loss on exactly that position."""
    y = int(yb[b, t])
    m, s, p, nll = nll_by_hand(logits[b, t], y)
    _, backend_nll = model.forward(xb[b : b + 1, t : t + 1], yb[b : b + 1, t : t + 1])  # (1,1)
    return WorkedNLL(b, t, tok.decode([xb[b, t]]), tok.decode([y]), y, np.asarray(logits[b, t]),
                     m, s, p, nll, float(backend_nll))


def probs_of(model, xb: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
    """(B,T,C) next-token probabilities: the backend's softmax table, rows looked up by xb."""
    from bigram.core.generate import probs_table

    return probs_table(model)[xb]  # (B,T,C)


def generation_step(model, tok, xb, logits, seed: int) -> Generation:
    """(B,T,C) -> last step (B,C) -> probabilities -> one sampled token per row, by the backend."""
    B = xb.shape[0]
    last = logits[:, -1, :]  # (B,C): only the last token predicts what comes next
    probs = probs_of(model, xb[:, -1:], last[:, None, :])[:, 0, :]  # (B,C)
    coins = draw_coins(seed, B, 1)  # (B,1)
    nxt = model.generate(xb, coins)[:, -1]  # (B,) the backend samples from its own table
    return Generation(last.shape, [tok.decode([i]) for i in xb[:, -1]], probs, coins[:, 0],
                      nxt, [tok.decode([i]) for i in nxt])


def explain(model, corpus: Corpus, *, backend: str, weights: str, batch_size: int = 4, block_size: int = 8,
            seed: int = 1337, optim: AdamWConfig | None = None) -> Explanation:
    """Run one real batch through `model` and collect every number the walk-through shows.

    The last stage takes one real AdamW step on the batch (`optim` must be the
    config the model was built with), reads the result and puts the model's
    state back, so `model` ends as it began.
    """
    tok = corpus.tokenizer
    xb, yb = first_batch(corpus, batch_size, block_size, seed)  # (B,T), (B,T)
    logits, loss = model.forward(xb, yb)  # (B,T,C), the backend's cross-entropy
    B, T, C = logits.shape
    W = model.get_state()[WEIGHT_KEY]  # (V,V)
    hand = [nll_by_hand(logits[b, t], int(yb[b, t]))[3] for b in range(B) for t in range(T)]
    grads = backend_grads(model, xb, yb)  # the backend's backward: dlogits (B,T,C) where it has them, dW (V,V)
    generation = generation_step(model, tok, xb, logits, seed)  # before the update changes the table
    scatter = scatter_add(xb, yb, grads)
    backward = dict(dlogits=work_dlogits(logits, yb, grads), scatter=scatter,
                    adamw=work_adamw(model, xb, yb, grads["dW"], optim or AdamWConfig(), scatter))
    return Explanation(
        backend=backend, weights=weights, vocab_size=C, chars=[tok.decode([i]) for i in range(C)], xb=xb, yb=yb,
        x_rows=[tok.decode(r) for r in xb], y_rows=[tok.decode(r) for r in yb],
        pairs=[(tok.decode(xb[0, : t + 1]), tok.decode([yb[0, t]])) for t in range(T)],
        logits_shape=(B, T, C), flat_shape=(B * T, C), targets_shape=(B * T,),
        lookup_matches=bool(np.array_equal(logits, W[xb])),
        prob_row_sums=probs_of(model, xb, logits).reshape(B * T, C).sum(axis=1),
        worked=work_one(model, tok, xb, yb, logits), batch_loss=float(loss),
        batch_loss_by_hand=math.fsum(hand) / len(hand), expected_init_loss=math.log(C),
        generation=generation, **backward,
    )


# ----------------------------------------------------------------------------
# the backward pass and one update, on the same batch


@dataclass
class WorkedGrad:
    """dloss/dlogits at one position, (softmax - onehot) / (B*T), by hand, against the backend's gradient."""

    b: int
    t: int
    target_id: int
    n_positions: int  # B*T: the loss is a mean, so each position's gradient is divided by it
    probs: np.ndarray  # (C,) softmax of the position's logits, by hand in float64
    by_hand: np.ndarray  # (C,) (probs - onehot(target)) / (B*T)
    backend: np.ndarray | None  # (C,) the backend's dlogits[b,t]; None when it gives only dW
    columns: list[int]  # the columns worth showing: the target and the most likely ones

    @property
    def max_abs_diff(self) -> float | None:
        return None if self.backend is None else float(np.abs(self.by_hand - self.backend).max())


@dataclass
class ScatterAdd:
    """The embedding's backward: every position that read row i adds its dlogits into dW[i]."""

    row: int  # the token id read by the most positions
    positions: list[tuple[int, int]]  # (b,t) of each position that read it
    contributions: np.ndarray  # (k,C) the backend's dlogits at those positions
    summed: np.ndarray  # (C,) their sum, float64
    backend_row: np.ndarray  # (C,) the backend's dW[row]
    columns: list[int]  # the targets of those positions: where the contributions are negative
    rows_read: int  # distinct rows the batch reads
    unread_zero: bool  # every row no position reads has dW exactly 0

    @property
    def max_abs_diff(self) -> float:
        return float(np.abs(self.summed - self.backend_row).max())


@dataclass
class WorkedAdamW:
    """One AdamW update of one weight W[i,j], by hand from torch's formula, against the backend's."""

    i: int
    j: int
    config: AdamWConfig
    t: int  # this update's step number, 1-based (bias corrections use it)
    w: float  # before: the weight, its gradient and its two moments
    g: float
    m: float
    v: float
    decayed: float  # w * (1 - lr * weight_decay): decoupled decay first
    m_new: float  # beta1 * m + (1 - beta1) * g
    v_new: float  # beta2 * v + (1 - beta2) * g^2
    m_hat: float  # m_new / (1 - beta1^t)
    v_hat: float  # v_new / (1 - beta2^t)
    by_hand: float  # decayed - lr * m_hat / (sqrt(v_hat) + eps)
    backend: float  # W[i,j] after the backend's own train_step on the batch
    table_moved: float  # the largest |change| of any weight in that step

    @property
    def diff(self) -> float:
        return abs(self.by_hand - self.backend)


def _top_columns(probs: np.ndarray, target: int, k: int = 3) -> list[int]:
    """The target's column and the k most likely ones, in id order."""
    return sorted({int(target), *(int(j) for j in np.argsort(-probs, kind="stable")[:k])})


def work_dlogits(logits: np.ndarray, yb: np.ndarray, grads: dict, b: int = 0, t: int = 0) -> WorkedGrad:
    """Position (b,t)'s gradient by hand: softmax of its logits, minus 1 at the target, over B*T."""
    B, T, C = logits.shape
    y = int(yb[b, t])
    row = [float(v) for v in logits[b, t]]
    m = max(row)
    e = [math.exp(v - m) for v in row]
    total = math.fsum(e)
    probs = np.array([x / total for x in e])  # (C,)
    by_hand = probs.copy()
    by_hand[y] -= 1.0  # the one-hot of the target
    by_hand /= B * T  # the loss is the mean over the B*T positions
    dl = grads.get("dlogits")
    backend = None if dl is None else np.asarray(dl[b, t], dtype=np.float64)
    return WorkedGrad(b, t, y, B * T, probs, by_hand, backend, _top_columns(probs, y))


def scatter_add(xb: np.ndarray, yb: np.ndarray, grads: dict) -> ScatterAdd | None:
    """The row most positions read, its contributions (the backend's dlogits) and the backend's dW row."""
    dl = grads.get("dlogits")
    if dl is None:
        return None
    ids, n = np.unique(xb, return_counts=True)
    row = int(ids[np.argmax(n)])  # the most-read row (smallest id on a tie)
    pos = [(int(b), int(t)) for b, t in zip(*np.nonzero(xb == row))]  # row-major: (0,0), (0,1), ...
    contrib = np.stack([np.asarray(dl[b, t], dtype=np.float64) for b, t in pos])  # (k,C)
    dW = np.asarray(grads["dW"], dtype=np.float64)  # (V,C)
    unread = np.setdiff1d(np.arange(dW.shape[0]), ids)
    columns = sorted({int(yb[b, t]) for b, t in pos})[:4]
    return ScatterAdd(row, pos, contrib, contrib.sum(axis=0), dW[row], columns, len(ids),
                      bool(np.all(dW[unread] == 0)))


def adamw_by_hand(w: float, g: float, m: float, v: float, t: int, c: AdamWConfig) -> tuple[float, ...]:
    """torch.optim.AdamW's update of one weight (its documented algorithm), in float64.

    Returns (decayed, m_new, v_new, m_hat, v_hat, w_new).
    """
    decayed = w * (1 - c.lr * c.weight_decay)  # decoupled weight decay, off the raw weight
    m_new = c.beta1 * m + (1 - c.beta1) * g  # first moment: a running mean of the gradient
    v_new = c.beta2 * v + (1 - c.beta2) * g * g  # second moment: of its square
    m_hat = m_new / (1 - c.beta1**t)  # bias corrections: both moments start at 0
    v_hat = v_new / (1 - c.beta2**t)
    return decayed, m_new, v_new, m_hat, v_hat, decayed - c.lr * m_hat / (math.sqrt(v_hat) + c.eps)


def work_adamw(model, xb: np.ndarray, yb: np.ndarray, dW: np.ndarray, optim: AdamWConfig,
               scatter: ScatterAdd | None) -> WorkedAdamW:
    """One weight's update by hand, then the backend's real step on the batch, its new value, and the state put back."""
    before = model.get_state()
    if scatter is not None:  # the weight the scatter-add showed: row read twice, column of a target
        i, j = scatter.row, scatter.columns[0]
    else:
        i, j = int(xb[0, 0]), int(yb[0, 0])
    t = int(before["adamw.step"]) + 1
    w, g = float(before[WEIGHT_KEY][i, j]), float(dW[i, j])
    m, v = float(before["adamw.exp_avg"][i, j]), float(before["adamw.exp_avg_sq"][i, j])
    decayed, m_new, v_new, m_hat, v_hat, w_new = adamw_by_hand(w, g, m, v, t, optim)
    if getattr(model, "set_lr", None) is not None:
        model.set_lr(optim.lr)
    model.train_step(xb, yb)  # the backend's forward, backward and AdamW
    after = model.get_state()[WEIGHT_KEY]  # (V,V)
    model.set_state(before)  # explaining a model leaves it as it was
    moved = float(np.abs(after.astype(np.float64) - before[WEIGHT_KEY]).max())
    return WorkedAdamW(i, j, optim, t, w, g, m, v, decayed, m_new, v_new, m_hat, v_hat, w_new,
                       float(after[i, j]), moved)
