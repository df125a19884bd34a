"""The Python API behind `import bigram` (docs/api.md walks through it).

The names are exported at the top level, loaded on first use, so
`import bigram` and `bigram --help` stay light:

    import bigram
    corpus = bigram.Corpus.load("input.txt")
    model = bigram.train(corpus, backend="numpy")
    model.next_probs("q")
"""

from bigram.api.functions import backends, check, explain, fit, load, train, vocab
from bigram.api.model import Model
from bigram.api.tables import NextChar, NextChars, Vocab, VocabEntry

__all__ = ["Model", "NextChar", "NextChars", "Vocab", "VocabEntry", "backends", "check", "explain", "fit", "load", "train", "vocab"]
