"""Run by tests/test_distributed.py under torchrun: distributed counts of a prepared dir's splits.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_counts_worker.py DIR OUT.npz
"""

import sys

import numpy as np

from bigram.backends.torch_dist import close_distributed, distributed_bigram_counts, init_distributed
from bigram.core.data import Corpus

if __name__ == "__main__":
    rank, world = init_distributed("cpu")
    corpus = Corpus.load(sys.argv[1])
    V = corpus.tokenizer.vocab_size
    counts = {s: distributed_bigram_counts(corpus.split(s), V) for s in ("train", "val")}
    counts["short"] = distributed_bigram_counts(corpus.train[:2], V)  # one pair: one rank has an empty shard
    if rank == 0:
        np.savez(sys.argv[2], world=world, **counts)
    close_distributed()
