"""One PNG, two panels: the loss curves with the optimum, and the learned next-character table.

matplotlib is an optional extra (`pip install 'bigram[plot]'`), imported only
here and only when a plot is drawn, with the file-only Agg backend so no
display is needed.
"""

from __future__ import annotations

import io
import math
import os
import stat
from pathlib import Path

import numpy as np

from bigram.core.errors import BigramError
from bigram.core.safefs import link_error, not_regular_error, write_file_atomic


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise BigramError("plotting needs matplotlib, which is not installed; pip install 'bigram[plot]'") from None
    matplotlib.use("Agg")  # files only: works on servers and in CI without a display
    import matplotlib.pyplot as plt

    return plt


def tick_label(ch: str) -> str:
    """A character as an axis label: the invisible ones spelled out."""
    return {"\n": "\\n", " ": "spc", "\t": "\\t"}.get(ch, ch)


def loss_curves(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """{"train": (steps, losses), "val": ...} from metrics.jsonl records, skipping nulls."""
    out = {}
    for split in ("train", "val"):
        pts = [(r["step"], r[f"{split}_loss"]) for r in records
               if isinstance(r.get(f"{split}_loss"), (int, float)) and isinstance(r.get("step"), int)]
        out[split] = ([s for s, _ in pts], [v for _, v in pts])
    return out


def _draw_losses(ax, records, optimum, vocab_size) -> None:
    curves = loss_curves(records)
    for split, style in (("train", "-o"), ("val", "-s")):
        steps, losses = curves[split]
        if steps:
            ax.plot(steps, losses, style, markersize=3, label=f"{split} loss (final {losses[-1]:.4f})")
    if optimum is not None and math.isfinite(optimum):
        ax.axhline(optimum, color="k", linestyle="--", label=f"optimum train loss, train MLE ({optimum:.4f})")
    ax.axhline(math.log(vocab_size), color="grey", linestyle=":", label=f"uniform guess, ln {vocab_size} "
               f"({math.log(vocab_size):.4f})")
    if not any(curves[s][0] for s in curves):
        ax.text(0.5, 0.5, "no losses in metrics.jsonl", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="step", ylabel="mean cross-entropy (nats)", title="loss over whole splits")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _draw_table(fig, ax, probs: np.ndarray, chars: list[str]) -> None:
    from matplotlib.colors import PowerNorm

    # sqrt colour scale: most mass sits in a few cells; this keeps the rest visible.
    im = ax.imshow(probs, cmap="Blues", norm=PowerNorm(gamma=0.5, vmin=0.0, vmax=float(probs.max())))
    labels = [tick_label(c) for c in chars]
    size = max(3.0, min(8.0, 400 / max(len(chars), 1)))  # 65 characters: about 6 pt
    ax.set_xticks(range(len(chars)), labels, fontsize=size, rotation=90)
    ax.set_yticks(range(len(chars)), labels, fontsize=size)
    ax.set(xlabel="next character", ylabel="current character", title="P(next | current): softmax of each row")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="probability (sqrt scale)")


def image_format(fig, out: Path) -> str:
    """The format `out`'s suffix names where matplotlib writes it, else PNG.

    Always passed explicitly: the figure is drawn into a buffer (then renamed
    into place), and an unknown suffix must not fail after the drawing.
    """
    ext = out.suffix[1:].lower()
    return ext if ext in fig.canvas.get_supported_filetypes() else "png"


def plot_run(out: str | Path, records: list[dict], probs: np.ndarray, chars: list[str], *,
             optimum: float | None, title: str) -> Path:
    """Write the two-panel PNG to `out` (replaced whole, never through a link); returns its path."""
    plt = pyplot()
    out = Path(out)
    if out.parent and not out.parent.exists():
        raise BigramError(f"directory {out.parent} for --out does not exist; create it or choose another --out")
    _check_target(out)
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 7.5), gridspec_kw={"width_ratios": [1, 1.1]})
    buf = io.BytesIO()
    try:
        _draw_losses(left, records, optimum, len(chars))
        _draw_table(fig, right, probs, chars)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(buf, dpi=150, format=image_format(fig, out))
    finally:
        plt.close(fig)
    write_file_atomic(out, buf.getvalue())  # a rename: a link at `out` would be replaced, never written through
    return out


def _check_target(out: Path) -> None:
    """A link (or a FIFO, a directory) where the PNG goes is the user's: refuse before drawing."""
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise link_error(out)
    if not stat.S_ISREG(st.st_mode):
        raise not_regular_error(out, st.st_mode)
