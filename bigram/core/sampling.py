"""Initial weights and sampling coins, drawn in core so every backend sees the same ones."""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from bigram.core.errors import BigramError


def seed_streams(seed: int) -> dict[str, np.random.SeedSequence]:
    """Independent streams derived from one seed: weights, train batches, val batches."""
    weights, train, val = np.random.SeedSequence(seed).spawn(3)
    return {"weights": weights, "train": train, "val": val}


def init_weights(vocab_size: int, seed: int) -> np.ndarray:
    """The (V,V) starting table, N(0,1) like nn.Embedding, float32."""
    rng = np.random.Generator(np.random.PCG64(seed_streams(seed)["weights"]))
    return rng.standard_normal((vocab_size, vocab_size)).astype(np.float32)


def draw_coins(seed: int, batch: int, n: int) -> np.ndarray:
    """(B, n) uniform coins in [0, 1), one per generated token."""
    return np.random.default_rng(seed).random((batch, n))


def start_token(tokenizer) -> tuple[int, bool]:
    """(id, is it a newline): where a sample with no prompt starts.

    A newline where the vocabulary has one, as the lecture's token 0 is on
    Tiny Shakespeare (a sample then reads like the start of a speech); the
    byte tokenizer's newline is byte 10, never NUL. A vocabulary without a
    newline starts from its token 0, and the caller says which that is.
    """
    try:
        ids = tokenizer.encode("\n")
    except (BigramError, ValueError, KeyError):  # "\n" is not in the vocabulary
        return 0, False
    return (int(ids[0]), True) if len(ids) == 1 else (0, False)


def sample_chain(probs: np.ndarray, idx: np.ndarray, coins: np.ndarray) -> np.ndarray:
    """Run the Markov chain: each next token by inverse CDF of its predecessor's row.

    probs (V,V): next-token probabilities per current token (rows need not sum
    exactly to 1; each coin is scaled by its row's total). idx (B,T) prompt ids;
    coins (B,N) uniforms. Returns (B, T+N). Like llm.c's sample_mult, the pick
    is the first j with coin < cdf[j]; only the last token is ever read, so each
    new token costs O(V), whatever the length so far.
    """
    cdf = np.cumsum(probs.astype(np.float64), axis=1)  # (V,V)
    V = probs.shape[0]
    B, T = idx.shape
    N = coins.shape[1]
    out = np.empty((B, T + N), dtype=np.int64)
    out[:, :T] = idx
    if B == 1:  # the common case: binary search on one row per token
        out[0, T:] = _chain_one(cdf, int(idx[0, -1]), coins[0])
        return out
    rows = np.arange(B)
    last = idx[:, -1].astype(np.int64)
    for t in range(N):
        c = cdf[last]  # (B,V)
        u = coins[:, t] * c[:, -1]  # (B,)
        last = np.minimum((c <= u[:, None]).sum(axis=1), V - 1)  # (B,) first j with u < cdf[j]
        out[rows, T + t] = last
    return out


def _chain_one(cdf: np.ndarray, last: int, coins: np.ndarray) -> list[int]:
    """One chain of len(coins) tokens from `last`: cdf (V,V), coins (N,) -> N ids.

    bisect_right on Python lists of the same float64 values is the same search
    as np.searchsorted(side="right"), without NumPy's per-call overhead, which
    at V=65 is most of the cost of a token.
    """
    rows = cdf.tolist()  # (V,V) as lists of floats
    totals = cdf[:, -1].tolist()  # (V,)
    top = cdf.shape[0] - 1
    out = []
    for u in coins.tolist():
        last = min(bisect_right(rows[last], u * totals[last]), top)
        out.append(last)
    return out
