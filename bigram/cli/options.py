"""Options several commands share, declared once: the val split, samples during training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bigram.core.defaults import DEFAULT_VAL_FRACTION


def val_fraction_option(prepared: bool = True) -> Optional[float]:
    where = " (a prepared DIR keeps the split it was prepared with)" if prepared else ""
    return typer.Option(
        None, "--val-fraction", metavar="F",
        help=f"Share of --data held out for validation, 0 <= F < 1 (default {DEFAULT_VAL_FRACTION:g}; "
             f"0: no val split, no val loss){where}.",
    )


def val_data_option() -> Optional[Path]:
    return typer.Option(
        None, "--val-data", metavar="FILE",
        help="Validate on this UTF-8 file instead of a held-out share (tokenized with --data's vocabulary; "
             "all of --data then trains).",
    )


def sample_interval_option() -> Optional[int]:
    return typer.Option(
        None, "--sample-interval", metavar="N",
        help="Every N steps, print a short sample (100 characters, seeded: reruns print the same).",
    )
