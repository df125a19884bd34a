"""The best a bigram can do: the closed-form maximum-likelihood table from counts.

Over a whole split, the mean cross-entropy of a table W depends only on the
bigram counts C (V,V):  loss(W) = -sum_ij C_ij * log_softmax(W_i)_j / N.
It is minimised by W_i = log(C_i / sum_j C_ij) (any per-row constant added),
so the optimum is known without training. This is statistics of the data, not
model math, so it lives in core and is shared by every backend.
"""

from __future__ import annotations

import numpy as np


def optimal_table(counts: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """(V,V) counts -> (V,V) float32 log-probabilities log((C_i + k) / sum_j (C_ij + k)).

    Add-k smoothing gives pairs never seen in training a finite logit; with
    k = 0 they get a very negative but finite one, so the table stays finite.
    A row with no counts at all (a token never followed) comes out uniform.
    """
    c = counts.astype(np.float64) + smoothing  # (V,V)
    rows = c.sum(axis=1, keepdims=True)  # (V,1)
    V = counts.shape[1]
    p = np.divide(c, rows, out=np.full_like(c, 1.0 / V), where=rows > 0)  # (V,V)
    return np.log(np.maximum(p, np.finfo(np.float32).tiny)).astype(np.float32)


def optimal_loss(counts: np.ndarray) -> float:
    """Mean NLL of the unsmoothed MLE on the counts it was fit to (0 log 0 = 0)."""
    c = counts.astype(np.float64)
    n = c.sum()
    if n == 0:
        return float("nan")
    rows = c.sum(axis=1, keepdims=True)  # (V,1)
    nz = c > 0
    return float(-(c[nz] * np.log((c / np.where(rows > 0, rows, 1))[nz])).sum() / n)
