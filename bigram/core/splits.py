"""Where a corpus splits into train and val: the lecture's rule, with the held-out share as a choice.

NumPy-free, so `data prepare` and `Corpus` share it without importing each other.
"""

from __future__ import annotations

import math

from bigram.core.defaults import DEFAULT_VAL_FRACTION
from bigram.core.errors import BigramError


def check_val_fraction(f) -> float:
    """A held-out share from 0 (no val split) up to, not including, 1; else a one-line error."""
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not math.isfinite(f) or not 0 <= f < 1:
        raise BigramError(f"--val-fraction must be a number from 0 (no val split) up to but not including 1, "
                          f"got {f}; e.g. --val-fraction {DEFAULT_VAL_FRACTION}")
    return float(f)


def val_fraction_for(val_fraction, separate_val: bool) -> float:
    """The held-out share to use: the default 0.1, or 0 when a separate val file replaces the split."""
    if separate_val:
        if val_fraction not in (None, 0):
            raise BigramError(f"--val-data replaces the held-out split, so --val-fraction {val_fraction} has no "
                              "effect; drop --val-fraction (the whole --data then trains)")
        return 0.0
    return check_val_fraction(DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction)


def split_point(n_tokens: int, val_fraction: float = DEFAULT_VAL_FRACTION) -> int:
    """Tokens in the train split: the lecture's int(0.9 * len(data)) for the default 0.1.

    (1 - 0.1 is exactly the double 0.9, so the default split is the lecture's to the token.)
    """
    return int((1 - val_fraction) * n_tokens)
