"""bigram: the character-level bigram language model of "Let's build GPT".

A (vocab, vocab) embedding table read as next-token logits, trained with
cross-entropy and AdamW and sampled one token at a time, with a hand-written
NumPy reference and a PyTorch backend that check each other.

    >>> import bigram
    >>> corpus = bigram.Corpus.load("input.txt")                 # doctest: +SKIP
    >>> model = bigram.train(corpus, backend="numpy")            # doctest: +SKIP
    >>> print(model.generate(200, prompt="ROMEO:"))              # doctest: +SKIP

The names below are loaded on first use (PEP 562): `import bigram` reads no
NumPy and no torch, so `bigram --help` stays fast. docs/api.md walks through them.
"""

import importlib as _importlib

__version__ = "0.1.0"

_EXPORTS = {
    "bigram.api.functions": ("check", "explain", "fit", "list_backends", "load", "train", "vocab"),
    "bigram.api.model": ("Model",),
    "bigram.api.tables": ("NextChar", "NextChars", "Vocab", "VocabEntry"),
    "bigram.core.check": ("CheckReport",),
    "bigram.core.data": ("Corpus",),
    "bigram.core.errors": ("BigramError",),
    "bigram.core.evaluate": ("EvalResult",),
    "bigram.core.tokenizer": ("ByteTokenizer", "CharTokenizer"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(_importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'bigram' has no attribute {name!r}")


def __dir__():
    return sorted({n for n in globals() if not n.startswith("_")} | set(__all__))
