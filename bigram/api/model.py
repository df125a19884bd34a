"""`bigram.Model`: a bigram table on one backend, with its vocabulary and the record of its run."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from bigram.api.tables import NextChars
from bigram.core.backend import WEIGHT_KEY
from bigram.core.backend import Model as BackendModel
from bigram.core.data import Corpus
from bigram.core.defaults import DEFAULT_SEED
from bigram.core.display import html_table, token_labels
from bigram.core.errors import BigramError
from bigram.core.evaluate import EvalResult
from bigram.core.tokenizer import Tokenizer
from bigram.core.train import TrainResult

DEFAULT_MAX_NEW_TOKENS = 500  # what `bigram generate` and train's sample write
DEFAULT_TOP_K_SHOWN = 10  # rows of a next-character table


class Model:
    """A trained, fitted or loaded bigram model: a (V,V) table of next-character logits.

    Made by `bigram.train`, `bigram.fit` or `bigram.load`, never by hand. It
    runs on the backend it was made with (its numbers are that backend's) and
    carries its vocabulary, its losses and its run's evaluations (`history`).

    >>> model.generate(max_new_tokens=100, seed=1337)   # doctest: +SKIP
    >>> model.next_probs("q")                            # doctest: +SKIP
    """

    def __init__(self, impl: BackendModel, tokenizer: Tokenizer, *, backend: str, config: dict | None = None,
                 history: list[dict] | None = None, path: str | Path | None = None,
                 result: TrainResult | None = None):
        self.impl = impl  # the backend's model (core's Model protocol)
        self.tokenizer = tokenizer
        self.backend = backend
        self.config = dict(config or {})  # what config.json holds
        self.history = list(history or [])  # metrics.jsonl's records: one per evaluation
        self.path = Path(path) if path is not None else None  # where it was saved or loaded
        self.result = result  # the TrainResult of bigram.train (timings), else None
        self.rank = 0  # in a torchrun job (train(distributed=True)), this process's rank

    # ---------------------------------------------------------------- facts

    @property
    def device(self) -> str:
        return self.impl.device

    @property
    def dtype(self) -> str:
        return self.impl.dtype

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.vocab_size)

    @property
    def vocab(self) -> list[str]:
        """Every token as shown in tables, in id order: '\\n', '␣' (space), '!', ..."""
        return token_labels(self.tokenizer)

    @property
    def step(self) -> int:
        """Optimizer steps taken (0 for a fitted or untrained table)."""
        return int(self.impl.get_state()["adamw.step"])

    @property
    def weights(self) -> np.ndarray:
        """A copy of the (V,V) table: row i holds the logits of the token after token i."""
        return self.impl.get_state()[WEIGHT_KEY]

    @property
    def probs(self) -> np.ndarray:
        """(V,V) float64 next-token probabilities, the backend's softmax of each row."""
        from bigram.core.generate import probs_table

        return probs_table(self.impl)

    def _metric(self, key: str):
        from bigram.core.checkpoint import recorded_metric

        return recorded_metric(self.config, key)

    @property
    def train_loss(self) -> float | None:
        """The train loss at the end of its run (exact unless trained with eval_batches)."""
        return self._metric("train_loss")

    @property
    def val_loss(self) -> float | None:
        """The val loss at the end of its run; None without a val split."""
        return self._metric("val_loss")

    @property
    def eval_batches(self) -> int | None:
        """None when the recorded losses are exact; N when they are estimates over N random batches."""
        m = self.config.get("metrics")
        n = m.get("eval_batches") if isinstance(m, dict) else None
        if n is None and isinstance(self.config.get("train"), dict):
            n = self.config["train"].get("eval_batches")
        return n if isinstance(n, int) and not isinstance(n, bool) else None

    # ---------------------------------------------------------------- use

    def generate(self, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, prompt: str | None = None,
                 seed: int = DEFAULT_SEED, temperature: float = 1.0, top_k: int | None = None) -> str:
        """The prompt (default: the start token) and `max_new_tokens` sampled characters.

        Same model and seed: same text on every backend. temperature 0 is greedy;
        top_k keeps the k most likely tokens (and any tied with the k-th).
        """
        from bigram.core.generate import sample_text

        return sample_text(self.impl, self.tokenizer, prompt=prompt, max_new_tokens=max_new_tokens, seed=seed,
                           temperature=temperature, top_k=top_k)

    def next_probs(self, prompt: str, top_k: int | None = DEFAULT_TOP_K_SHOWN) -> NextChars:
        """P(next character | the prompt's last character), sorted, as a table (bigram.NextChars).

        top_k: how many rows to show (None: all); table["u"] gives any character's probability.
        """
        from bigram.core.generate import next_distribution

        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise BigramError(f"--top-k must be a positive integer, got {top_k}; e.g. --top-k 10")
        last, probs = next_distribution(self.impl, self.tokenizer, prompt)
        return NextChars(prompt, last, probs, self.tokenizer, top_k)

    def eval(self, corpus: Corpus | str | Path | None = None, *, splits: str = "both",
             val_fraction: float | None = None, val_data: str | Path | None = None,
             count: Callable[[np.ndarray, int], np.ndarray] | None = None) -> EvalResult:
        """Exact loss over each whole split, the best train loss any bigram reaches, and the gap.

        corpus: a Corpus, a text file or prepared directory (encoded with this model's
        vocabulary, split as the model was trained unless val_fraction/val_data say
        otherwise), or None for Tiny Shakespeare. splits: "train", "val" or "both".
        """
        from bigram.core.data import bigram_counts
        from bigram.core.evaluate import corpus_counts, evaluate_counts, load_corpus_for, parse_split

        asked = parse_split(splits)
        count = count or bigram_counts
        if isinstance(corpus, Corpus):
            if val_fraction is not None or val_data is not None:
                raise BigramError("val_fraction and val_data choose how a corpus is loaded; pass them to "
                                  "bigram.Corpus.load, or pass eval() a path")
            self._check_vocabulary(corpus)
            counts, warnings = corpus_counts(self.config, corpus, count)
        else:
            corpus, counts, warnings = load_corpus_for(self, corpus, count, val_fraction=val_fraction,
                                                       val_data=val_data)
        result = evaluate_counts(self.impl, counts, asked)
        result.warnings, result.corpus = warnings, corpus
        return result

    def _check_vocabulary(self, corpus: Corpus) -> None:
        if corpus.tokenizer.to_json() != self.tokenizer.to_json():
            raise BigramError(
                f"corpus {corpus.source} has another vocabulary ({corpus.tokenizer.vocab_size} tokens) than the "
                f"model ({self.vocab_size}); load it with bigram.Corpus.load(path, tokenizer=model.tokenizer), "
                "or pass eval() the path"
            )

    def save(self, path: str | Path) -> Path:
        """Write the model as an ordinary checkpoint directory (what `bigram train --out` writes).

        DIR is a new path, an empty directory or a checkpoint (replaced); anything
        else is refused (bigram.core.checkpoint). Its metrics.jsonl becomes this
        model's history, never an older run's.
        """
        from bigram.core.checkpoint import save_checkpoint

        config = {"backend": self.backend, "device": self.device, "dtype": self.dtype, **self.config}
        self.path = Path(save_checkpoint(path, self.impl.get_state(), self.tokenizer, config, metrics=self.history))
        return self.path

    @property
    def optimum_train_loss(self) -> float | None:
        """The lowest train loss any bigram reaches on its corpus (the train MLE's), as train or fit recorded it."""
        return self._metric("optimum_train_loss")

    def token_counts(self) -> np.ndarray | None:
        """(V,) each token's count in the training corpus, as recorded when trained; None for older checkpoints."""
        from bigram.core.checkpoint import recorded_token_counts

        return recorded_token_counts(self.config, self.vocab_size)

    def plot(self, path: str | Path | None = None, *, data: Corpus | str | Path | None = None,
             optimum: float | None = None, title: str | None = None) -> Path:
        """Draw the run's losses (whole run, and a zoom on its last 90% with the optimum) beside the
        P(next | current) heatmap, to a PNG; `bigram plot`. Needs matplotlib (`pip install matplotlib`).

        path: the file to write (default: DIR/plot.png of the checkpoint it came from). optimum:
        the line to draw (default: recorded by train/fit, else counted from `data`). The heatmap
        shows every token while they fit, else the most frequent ones (counts from `data`, else
        those recorded when trained).
        """
        from bigram.core.plot import plot_table, require_matplotlib

        require_matplotlib()  # a missing matplotlib is reported before any work
        if path is None:
            if self.path is None:
                raise BigramError("this model was never saved; pass the PNG's path: model.plot(\"plot.png\")")
            path = self.path / "plot.png"
        corpus = data
        if data is not None and (optimum is None or not isinstance(data, Corpus)):
            result = self.eval(data, splits="train")  # in this model's vocabulary, checked
            corpus = result.corpus
            optimum = result.optimum_train_loss if optimum is None else optimum
        optimum = self.optimum_train_loss if optimum is None else optimum
        where = f"{self.path} " if self.path is not None else ""
        title = title or f"bigram {where}(backend {self.backend}, step {self.step})"
        return plot_table(path, self.probs, self.tokenizer, self.config, self.history, optimum=optimum,
                          corpus=corpus, title=title)

    # ---------------------------------------------------------------- display

    def _facts(self) -> list[tuple[str, str]]:
        fmt = lambda v: "-" if v is None else f"{v:.6f}"  # noqa: E731
        kind = "exact" if self.eval_batches is None else f"estimates over {self.eval_batches} batches"
        facts = [("backend", f"{self.backend} ({self.device}, {self.dtype})"),
                 ("vocab size", str(self.vocab_size)), ("step", str(self.step)),
                 (f"train loss ({kind})", fmt(self.train_loss)),
                 (f"val loss ({kind})", "- (no val split)" if self.val_loss is None else fmt(self.val_loss))]
        if self.optimum_train_loss is not None:
            facts.append(("optimum train loss", fmt(self.optimum_train_loss)))
        if self.path is not None:
            facts.append(("checkpoint", str(self.path)))
        return facts

    def __repr__(self) -> str:
        fmt = lambda v: "None" if v is None else f"{v:.6f}"  # noqa: E731
        est = "" if self.eval_batches is None else f", eval_batches={self.eval_batches}"
        return (f"Model(backend={self.backend!r}, device={self.device!r}, dtype={self.dtype!r}, "
                f"vocab_size={self.vocab_size}, step={self.step}, train_loss={fmt(self.train_loss)}, "
                f"val_loss={fmt(self.val_loss)}{est})")

    def _repr_html_(self) -> str:
        shown = " ".join(self.vocab[:40]) + (" …" if self.vocab_size > 40 else "")
        return html_table(["bigram.Model", ""], [*map(list, self._facts()), ["vocabulary", shown]])
