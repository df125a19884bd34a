"""Training defaults, in a module that imports nothing, so the CLI can show them
in `bigram --help` without loading NumPy.

Batch, block and seed are the lecture's. The lecture's lr (1e-3) needs ~10k
steps to get near the optimum. With lr 1e-2, 3000 steps reach val 2.488 on
Tiny Shakespeare; larger lr gets there sooner but stays noisier (0.05: 2.501,
0.1: 2.521), since batch-32 gradients are noisy.
"""

DEFAULT_BATCH_SIZE = 32
DEFAULT_BLOCK_SIZE = 8
DEFAULT_SEED = 1337
DEFAULT_LR = 1e-2
DEFAULT_STEPS = 3000
DEFAULT_EVAL_INTERVAL = 500

# Training step methods (bigram/core/fast.py). "counts" reaches the textbook
# path's losses within the cross-check tolerances (tests/test_fast_paths.py).
METHODS = ("counts", "textbook")
DEFAULT_METHOD = "counts"

# Add-1 (Laplace) smoothing for `bigram fit`: the best val loss of the train MLE
# on Tiny Shakespeare among k in {0, 0.01, 0.1, 0.5, 1, 2, 5} (docs/how-good.md).
DEFAULT_SMOOTHING = 1.0
