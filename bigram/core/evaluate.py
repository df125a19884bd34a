"""Exact evaluation of a checkpoint, and the closed-form fit, from bigram counts.

Over a whole split the mean cross-entropy of a table depends on the split
only through its (V,V) bigram counts, so "the loss over every position" is
one O(N) count plus one O(V^2) reduction done by the backend (eval_counts).
The same counts give the best loss any bigram table can reach (optimum.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bigram.core.data import Corpus, bigram_counts
from bigram.core.defaults import DEFAULT_SMOOTHING  # noqa: F401 (re-exported)
from bigram.core.errors import BigramError
from bigram.core.optimum import optimal_loss, optimal_table

SPLITS = ("train", "val")


@dataclass
class EvalResult:
    """Exact losses over whole splits; None where a split was not asked for.

    gap = train_loss - optimum_train_loss: how far the table's train loss is
    above the lowest train loss any bigram table can reach (the unsmoothed
    train MLE). It is >= 0 up to float rounding; 0 means nothing is left to
    learn about the training text.
    """

    train_loss: float | None
    val_loss: float | None
    optimum_train_loss: float
    gap: float | None

    def to_json(self) -> dict:
        return asdict(self)


def split_counts(corpus: Corpus, splits=SPLITS, count=bigram_counts) -> dict[str, np.ndarray]:
    """(V,V) bigram counts of each split: the only thing exact evaluation needs.

    `count(tokens, V)` defaults to one process; a data-parallel job passes
    torch_dist.distributed_bigram_counts, which sums every rank's shard exactly.
    """
    V = corpus.tokenizer.vocab_size
    return {s: count(corpus.split(s), V) for s in splits}


def evaluate_counts(model, counts: dict[str, np.ndarray], splits=SPLITS) -> EvalResult:
    """The model's exact loss on each asked split (by its backend), the optimum and the gap."""
    losses = {s: (model.eval_counts(counts[s]) if s in splits else None) for s in SPLITS}
    optimum = optimal_loss(counts["train"])
    gap = None if losses["train"] is None else losses["train"] - optimum
    return EvalResult(losses["train"], losses["val"], optimum, gap)


def parse_split(split: str) -> tuple[str, ...]:
    if split == "both":
        return SPLITS
    if split in SPLITS:
        return (split,)
    raise BigramError(f"unknown --split {split!r}; use train, val or both")


def load_corpus_for(ckpt, data: str | Path | None, count=bigram_counts) -> tuple[Corpus, dict[str, np.ndarray], list[str]]:
    """The corpus encoded with the checkpoint's tokenizer, its split counts, and warnings.

    A character the checkpoint has never seen fails the encode (one-line
    BigramError); a checkpoint character the corpus never uses means the
    corpus' vocabulary differs too, which is also an error. A byte model
    covers every byte by construction, so there an unused id is no mismatch.
    """
    corpus = Corpus.load(data, tokenizer=ckpt.tokenizer)
    counts = split_counts(corpus, count=count)
    check_vocab(counts, ckpt.tokenizer, corpus.source)
    return corpus, counts, _sha_warnings(ckpt.config, corpus)


def check_vocab(counts: dict[str, np.ndarray], tokenizer, source: str) -> None:
    """Every id of a vocabulary built from a corpus must occur in the corpus (as a predecessor or a successor).

    A fixed vocabulary (the byte tokenizer's 256 ids) does not come from the
    corpus, so a corpus that never uses some of it is still its own corpus.
    """
    if getattr(tokenizer, "fixed_vocabulary", False):
        return
    seen = sum(c.sum(axis=0) + c.sum(axis=1) for c in counts.values())  # (V,)
    unused = np.flatnonzero(seen == 0)
    if len(unused):
        V = tokenizer.vocab_size
        never = ", ".join(repr(c) for c in tokenizer.decode(unused[:20]))
        raise BigramError(
            f"corpus {source} uses {V - len(unused)} of the checkpoint's {V} characters (never {never}), "
            "so its vocabulary differs; pass --data with the corpus the checkpoint was trained on"
        )


def _sha_warnings(config: dict, corpus: Corpus) -> list[str]:
    want = (config.get("corpus") or {}).get("sha256")
    if want and want != corpus.sha256:
        src = (config.get("corpus") or {}).get("source", "?")
        return [
            f"warning: corpus {corpus.source} (sha256 {corpus.sha256[:12]}) is not the one the checkpoint "
            f"was trained on ({src}, sha256 {want[:12]}); the losses are for this corpus"
        ]
    return []


def check_smoothing(smoothing: float) -> None:
    if not (math.isfinite(smoothing) and smoothing >= 0):
        raise BigramError(
            f"--smoothing must be a finite number >= 0, got {smoothing}; try --smoothing {DEFAULT_SMOOTHING:g}"
        )


def fit_table(train_counts: np.ndarray, smoothing: float = DEFAULT_SMOOTHING) -> np.ndarray:
    """The closed-form best table for the train split (add-k smoothed), (V,V) float32."""
    check_smoothing(smoothing)
    return optimal_table(train_counts, smoothing)
