"""The Python API behind `import bigram` (docs/api.md walks through it).

The names are exported at the top level (bigram/__init__.py), loaded on first
use, so `import bigram`, `bigram --help` and the CLI modules that import
`bigram.api.parallel` stay free of NumPy and torch:

    import bigram
    corpus = bigram.Corpus.load("input.txt")
    model = bigram.train(corpus, backend="numpy")
    model.next_probs("q")

    functions.py  train, fit, load, check, explain, vocab, backends
    model.py      Model
    tables.py     NextChars, Vocab: characters shown readably
    parallel.py   a run or a count as one rank of a torchrun job
"""
