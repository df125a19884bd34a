"""Run by tests/test_distributed.py under torchrun, once for all its 2-rank checks (each launch
costs a torch import per rank):

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_worker.py COUNTS_DIR OUT.npz -- TRAIN ARGS

1. distributed bigram counts of COUNTS_DIR's splits (rank 0 saves them to OUT.npz);
2. the CLI, exactly as `torchrun -m bigram TRAIN ARGS` runs it, in the group joined in step 1.
"""

import sys

import numpy as np

from bigram.backends.torch_dist import distributed_bigram_counts, init_distributed
from bigram.cli.app import main
from bigram.core.data import Corpus

if __name__ == "__main__":
    counts_dir, out, sep, *train_args = sys.argv[1:]
    assert sep == "--"
    rank, world = init_distributed("cpu")
    corpus = Corpus.load(counts_dir)
    V = corpus.tokenizer.vocab_size
    counts = {s: distributed_bigram_counts(corpus.split(s), V) for s in ("train", "val")}
    counts["short"] = distributed_bigram_counts(corpus.train[:2], V)  # one pair: one rank's shard is empty
    if rank == 0:
        np.savez(out, world=world, **counts)
    try:
        main(train_args)  # init_distributed reuses the group joined above; the CLI destroys it at the end
    except SystemExit as e:
        sys.exit(e.code)
