"""One real batch, step by step, as numbers: what `bigram explain` renders.

Every number here comes from the backend (forward, next_token_probs,
generate) except the single NLL worked by hand, which exists to be checked
against the backend's cross-entropy. Nothing is printed: the CLI renders the
Explanation, and tests read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bigram.core.backend import WEIGHT_KEY
from bigram.core.data import Batcher, Corpus
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


@dataclass
class Explanation:
    backend: str
    weights: str  # "init (seed N)" or the checkpoint path
    vocab_size: int
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


def first_batch(corpus: Corpus, batch_size: int, block_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first training batch `bigram train --seed seed` would draw. (B,T), (B,T)."""
    corpus.check_block_size(block_size)
    batcher = Batcher(corpus.train, batch_size, block_size, seed_streams(seed)["train"])
    xb, yb = batcher.get_batch()
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


def probs_of(model, xb: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """(B,T,C) next-token probabilities: the backend's softmax table, rows looked up by xb."""
    if hasattr(model, "next_token_probs"):
        return model.next_token_probs()[xb]  # (B,T,C)
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))  # a backend without the table
    return z / z.sum(axis=-1, keepdims=True)


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
            seed: int = 1337) -> Explanation:
    """Run one real batch through `model` and collect every number the walk-through shows."""
    tok = corpus.tokenizer
    xb, yb = first_batch(corpus, batch_size, block_size, seed)  # (B,T), (B,T)
    logits, loss = model.forward(xb, yb)  # (B,T,C), the backend's cross-entropy
    B, T, C = logits.shape
    W = model.get_state()[WEIGHT_KEY]  # (V,V)
    hand = [nll_by_hand(logits[b, t], int(yb[b, t]))[3] for b in range(B) for t in range(T)]
    return Explanation(
        backend=backend, weights=weights, vocab_size=C, xb=xb, yb=yb,
        x_rows=[tok.decode(r) for r in xb], y_rows=[tok.decode(r) for r in yb],
        pairs=[(tok.decode(xb[0, : t + 1]), tok.decode([yb[0, t]])) for t in range(T)],
        logits_shape=(B, T, C), flat_shape=(B * T, C), targets_shape=(B * T,),
        lookup_matches=bool(np.array_equal(logits, W[xb])),
        prob_row_sums=probs_of(model, xb, logits).reshape(B * T, C).sum(axis=1),
        worked=work_one(model, tok, xb, yb, logits), batch_loss=float(loss),
        batch_loss_by_hand=math.fsum(hand) / len(hand), expected_init_loss=math.log(C),
        generation=generation_step(model, tok, xb, logits, seed),
    )
