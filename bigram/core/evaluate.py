"""Exact evaluation of a checkpoint, and the closed-form fit, from bigram counts.

Over a whole split the mean cross-entropy of a table depends on the split
only through its (V,V) bigram counts, so "the loss over every position" is
one O(N) count plus one O(V^2) reduction done by the backend (eval_counts).
The same counts give the best loss any bigram table can reach (optimum.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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
    val_loss: float | None  # None: not asked for, or the corpus has no val split
    optimum_train_loss: float
    gap: float | None
    warnings: list[str] = field(default_factory=list, repr=False, compare=False)  # e.g. another corpus
    corpus: Corpus | None = field(default=None, repr=False, compare=False)  # what was evaluated

    exact = True  # over every position of each split, never an estimate

    def to_json(self) -> dict:
        return {"train_loss": self.train_loss, "val_loss": self.val_loss,
                "optimum_train_loss": self.optimum_train_loss, "gap": self.gap, "exact": self.exact}

    def _repr_html_(self) -> str:
        from bigram.core.display import html_table

        fmt = lambda v: "-" if v is None else f"{v:.6f}"  # noqa: E731
        rows = [["train loss", fmt(self.train_loss)], ["val loss", fmt(self.val_loss)],
                ["optimum train loss (train MLE)", fmt(self.optimum_train_loss)],
                ["gap (train - optimum)", fmt(self.gap)]]
        return html_table(["exact, every position", "nats"], rows)


def split_counts(corpus: Corpus, splits=SPLITS, count=bigram_counts) -> dict[str, np.ndarray]:
    """(V,V) bigram counts of each split the corpus has: the only thing exact evaluation needs.

    `count(tokens, V)` defaults to one process; a data-parallel job passes
    torch_dist.distributed_bigram_counts, which sums every rank's shard exactly.
    """
    V = corpus.tokenizer.vocab_size
    return {s: count(corpus.split(s), V) for s in splits if s in corpus.splits}


def evaluate_counts(model, counts: dict[str, np.ndarray], splits=SPLITS) -> EvalResult:
    """The model's exact loss on each asked split (by its backend), the optimum and the gap.

    A split missing from `counts` (a corpus without a val split) has no loss: None.
    """
    losses = {s: (model.eval_counts(counts[s]) if s in splits and s in counts else None) for s in SPLITS}
    optimum = optimal_loss(counts["train"])
    gap = None if losses["train"] is None else losses["train"] - optimum
    return EvalResult(losses["train"], losses["val"], optimum, gap)


def parse_split(split: str) -> tuple[str, ...]:
    if split == "both":
        return SPLITS
    if split in SPLITS:
        return (split,)
    raise BigramError(f"unknown --split {split!r}; use train, val or both")


def load_corpus_for(ckpt, data: str | Path | None, count=bigram_counts, *, val_fraction: float | None = None,
                    val_data: str | Path | None = None) -> tuple[Corpus, dict[str, np.ndarray], list[str]]:
    """The corpus encoded with the checkpoint's tokenizer, its split counts, and warnings.

    A character the checkpoint has never seen fails the encode (one-line
    BigramError); a checkpoint character the corpus never uses means the
    corpus' vocabulary differs too, which is also an error. A byte model
    covers every byte by construction, so there an unused id is no mismatch.
    """
    if data is None:
        check_default_corpus(ckpt.config)
    corpus = Corpus.load(data, tokenizer=ckpt.tokenizer, val_fraction=saved_val_fraction(ckpt.config, val_fraction,
                                                                                         val_data), val_data=val_data)
    counts, warnings = corpus_counts(ckpt.config, corpus, count)
    return corpus, counts, warnings


def check_default_corpus(config: dict) -> None:
    """No --data means Tiny Shakespeare: a model trained on another corpus says which one to pass instead."""
    from bigram.core.download import TINY_SHAKESPEARE_SHA256

    saved = config.get("corpus") if isinstance(config.get("corpus"), dict) else {}
    sha = saved.get("sha256")
    if isinstance(sha, str) and sha != TINY_SHAKESPEARE_SHA256:
        # Only the recorded file's name, quoted: a checkpoint may be untrusted, so its paths are neither
        # opened nor echoed as a command to run.
        src = saved.get("source") if isinstance(saved.get("source"), str) else ""
        named = f" recorded as {Path(src).name!r}" if src else ""
        raise BigramError(f"no --data given, so the default corpus (Tiny Shakespeare) would be read, but this "
                          f"checkpoint was trained on another corpus{named} (sha256 {sha[:12]}); pass --data FILE "
                          "with that corpus (and --val-data if it had a separate val file)")


def corpus_counts(config: dict, corpus: Corpus, count=bigram_counts) -> tuple[dict[str, np.ndarray], list[str]]:
    """A model's corpus (already in its vocabulary): each split's counts, checked, and warnings.

    `config` is the model's config.json: a corpus other than its training text,
    or a separate val file left out, gets a warning.
    """
    counts = split_counts(corpus, count=count)
    check_vocab(counts, corpus.tokenizer, corpus.source)
    return counts, _sha_warnings(config, corpus) + _val_warnings(config, corpus)


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


def saved_val_fraction(config: dict, val_fraction: float | None, val_data) -> float | None:
    """--val-fraction as given, else the split the checkpoint was trained with (so eval's val is its val).

    A checkpoint validated on a separate file trained on the whole text: without
    --val-data it gets no val split (0), never a slice of its own training data.
    One from before the option gets the default (None).
    """
    if val_fraction is not None or val_data is not None:
        return val_fraction
    corpus = config.get("corpus") if isinstance(config.get("corpus"), dict) else {}
    if corpus.get("val_source") is not None:
        return 0.0
    saved = corpus.get("val_fraction")
    if isinstance(saved, (int, float)) and not isinstance(saved, bool) and 0 <= saved < 1:
        return float(saved)
    return None


def _val_warnings(config: dict, corpus: Corpus) -> list[str]:
    """A checkpoint validated on a separate file, evaluated without it: say how to get its val loss."""
    saved = (config.get("corpus") or {}).get("val_source") if isinstance(config.get("corpus"), dict) else None
    if saved is not None and corpus.val_source is None:
        return [f"warning: this checkpoint was validated on a separate file ({saved}); pass --val-data FILE "
                "for its val loss (the checkpoint's path is never opened)"]
    return []
