"""Training defaults, in a module that imports nothing, so the CLI can show them
in `bigram --help` without loading NumPy.

Batch, block and seed are the lecture's. The lecture's lr (1e-3) needs ~11k
steps to get near the optimum. A constant lr trades speed for noise: 1e-2 needs
~2,950 steps to come within 0.01 of the optimum's train loss, and 0.05 never
does (batch-32 gradients are noisy). A cosine decay from 0.1 to 0.01 over 1500
steps gets there in ~1,350 and ends lower (README: "Defaults, and how they were
chosen"; bigram/core/schedule.py).
"""

DEFAULT_BATCH_SIZE = 32
DEFAULT_BLOCK_SIZE = 8
DEFAULT_SEED = 1337
DEFAULT_LR = 0.1
DEFAULT_STEPS = 1500
DEFAULT_EVAL_INTERVAL = 500
DEFAULT_MAX_NEW_TOKENS = 500  # train's sample and generate's text: one option, one default

# One dtype rule for every command: float32, the dtype checkpoints are trained,
# saved and sampled in. float64 is opt-in (`check --dtype float64` holds the
# backends to 1e-12 instead of float32's 1e-6..1e-3).
DEFAULT_DTYPE = "float32"

# Learning-rate schedules (bigram/core/schedule.py). Cosine decays from --lr to
# --min-lr, by default lr / DEFAULT_MIN_LR_DIVISOR (nanoGPT's lr/10), over the run.
# A divisor, not a 0.1 factor: 0.1 / 10 is exactly the 0.01 a user would type.
LR_SCHEDULES = ("cosine", "constant")
DEFAULT_LR_SCHEDULE = "cosine"
DEFAULT_MIN_LR_DIVISOR = 10

# Training step methods (bigram/core/fast.py). "counts" reaches the textbook
# path's losses within the cross-check tolerances (tests/test_fast_paths.py).
METHODS = ("counts", "textbook")
DEFAULT_METHOD = "counts"

# Add-1 (Laplace) smoothing for `bigram fit`: the best val loss of the train MLE
# on Tiny Shakespeare among k in {0, 0.01, 0.1, 0.5, 1, 2, 5} (docs/how-good.md).
DEFAULT_SMOOTHING = 1.0

# The lecture's split: the first int(0.9 * N) tokens train, the rest validate
# (Corpus.from_text and `bigram data prepare` alike).
TRAIN_FRACTION = 0.9

# The share of a corpus held out for validation: the lecture's last 10%
# (train = int(0.9 * len(data)), TRAIN_FRACTION). 0 means no validation split (bigram/core/splits.py).
DEFAULT_VAL_FRACTION = 0.1
