"""One PNG: the loss over the run, a zoom on its end with the optimum, and the learned next-character table.

matplotlib is an optional extra (`pip install matplotlib`), imported only
here and only when a plot is drawn. The figure is a bare matplotlib Figure on
an Agg canvas: no pyplot, so no GUI backend is imported or chosen (a server
needs no display, and a notebook's own backend is left as it was), and
nothing is registered globally that would need closing.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from bigram.core.errors import BigramError
from bigram.core.safefs import holds_a_file, write_file_atomic


def require_matplotlib():
    """matplotlib, or a one-line error naming the extra (called before any work)."""
    try:
        import matplotlib
    except ImportError:
        raise BigramError("plotting needs matplotlib, which is not installed; "
                          "pip install matplotlib (the plot extra: pip install -e '.[plot]' in a clone)") from None
    return matplotlib


def new_figure(**kwargs):
    """A Figure drawn by Agg, files only, without pyplot (see the module's docstring)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


DPI = 150  # 2550x1425 pixels: the heatmap's 6.5 pt labels are 13 pixels tall
MAX_SHOWN = 72  # heatmap rows and columns with labels a reader can still read (about 6 pt each)
ZOOM_FROM = 0.1  # the zoomed loss panel shows the run after its first 10%


def stationary(probs: np.ndarray, iters: int = 200) -> np.ndarray:
    """(V,) how often a long sample from the table visits each token: its own estimate of the frequencies.

    Used to rank tokens when the checkpoint records no corpus counts (power iteration of pi = pi P).
    """
    P = np.asarray(probs, dtype=np.float64)
    pi = np.full(len(P), 1.0 / len(P))
    for _ in range(iters):
        pi = pi @ P
        pi /= pi.sum()
    return pi


def shown_tokens(counts: np.ndarray, limit: int = MAX_SHOWN) -> tuple[np.ndarray, str]:
    """The ids the heatmap shows, in id order, and a phrase saying which.

    Every token while they fit; else only those that occur (a byte model's 256
    ids, most never seen), and of those the `limit` most frequent.
    """
    V = len(counts)
    if V <= limit:
        return np.arange(V), f"all {V} tokens"
    occurring = np.flatnonzero(counts > 0)
    if len(occurring) <= limit:
        return occurring, f"the {len(occurring)} of {V} tokens that occur"
    top = np.sort(np.argsort(-counts, kind="stable")[:limit])
    rest = counts.sum() - counts[top].sum()
    return top, (f"the {limit} most frequent of {V} tokens (the other {V - limit}: {_amount(rest)} of "
                 f"{_amount(counts.sum())} in the text)")


def _amount(x) -> str:
    """A count (corpus counts) or a share (a stationary distribution sums to 1)."""
    return f"{int(x):,}" if float(x).is_integer() and x >= 1 else f"{float(x):.2%}"


def _font():
    import matplotlib
    from matplotlib.font_manager import FontProperties, findfont, get_font

    return get_font(findfont(FontProperties(family=matplotlib.rcParams["font.family"])))


def drawable(labels: list[str]) -> list[str]:
    """Labels with every character the plot's font lacks replaced by its escape: no glyph warnings, no boxes."""
    from bigram.core.display import escape

    font = _font()
    has = lambda c: font.get_char_index(ord(c)) != 0  # noqa: E731
    return ["".join(c if has(c) else escape(c) for c in label) for label in labels]


MAX_LOSS = 1e300  # beyond it, matplotlib's axis arithmetic overflows (an edited file: no table's loss is near)


def drawable_loss(v) -> bool:
    """A loss the axes can show: a finite number from 0 (a cross-entropy) to MAX_LOSS."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= MAX_LOSS


def loss_curves(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """{"train": (steps, losses), "val": ...} from metrics.jsonl records, skipping nulls and undrawable values."""
    out = {}
    for split in ("train", "val"):
        pts = [(r["step"], r[f"{split}_loss"]) for r in records
               if drawable_loss(r.get(f"{split}_loss")) and isinstance(r.get("step"), int)]
        out[split] = ([s for s, _ in pts], [v for _, v in pts])
    return out


def _kind(records: list[dict]) -> str:
    """'exact' or 'estimates over N batches', as the records say."""
    n = next((r.get("eval_batches") for r in records if isinstance(r.get("eval_batches"), int)), None)
    return "exact, whole splits" if n is None else f"estimates over {n} batches"


def _hline(ax, optimum: float | None) -> None:
    if drawable_loss(optimum):
        ax.axhline(optimum, color="k", linestyle="--", label=f"optimum train loss, train MLE ({optimum:.4f})")


def _draw_losses(ax, curves, optimum, vocab_size: int, kind: str) -> None:
    """The whole run, from the untrained table's loss down, with the optimum and the uniform guess."""
    for split, style in (("train", "-o"), ("val", "-s")):
        steps, losses = curves[split]
        if steps:
            ax.plot(steps, losses, style, markersize=3, label=f"{split} loss (final {losses[-1]:.4f})")
    _hline(ax, optimum)
    ax.axhline(math.log(vocab_size), color="grey", linestyle=":", label=f"uniform guess, ln {vocab_size} "
               f"({math.log(vocab_size):.4f})")
    ax.set(xlabel="step", ylabel="mean cross-entropy (nats)", title=f"loss over the run ({kind})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _draw_zoom(ax, curves, optimum) -> None:
    """The last 90% of the run, where the curves approach the optimum: the part a full-scale axis flattens."""
    last = max(max(s) for s, _ in curves.values() if s)
    first = min(min(s) for s, _ in curves.values() if s)
    start = first + ZOOM_FROM * (last - first)
    shown = []
    for split, style in (("train", "-o"), ("val", "-s")):
        pts = [(s, v) for s, v in zip(*curves[split]) if s >= start]
        if pts:
            ax.plot(*zip(*pts), style, markersize=3, label=f"{split} loss (final {pts[-1][1]:.4f})")
            shown += [v for _, v in pts]
    _hline(ax, optimum)
    lo = min(shown + ([optimum] if drawable_loss(optimum) else []))
    hi = max(shown)
    pad = max(0.1 * (hi - lo), 0.002)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(start - 0.02 * (last - first), last + 0.02 * (last - first))
    ax.set(xlabel="step", ylabel="mean cross-entropy (nats)",
           title=f"zoom: the last {1 - ZOOM_FROM:.0%} of the run (steps {start:g} to {last}), with the optimum")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _draw_points(ax, curves, optimum, label: str, vocab_size: int, *, zoom: bool) -> None:
    """One evaluation (a fit, or a run of 0 steps): labelled markers, not a lone dot on an empty axis."""
    values = []
    for split, marker, dx in (("train", "o", -0.15), ("val", "s", 0.15)):
        steps, losses = curves[split]
        if losses:
            ax.plot([dx], [losses[-1]], marker, markersize=9, label=f"{split} loss")
            ax.annotate(f"{split} {losses[-1]:.4f}", (dx, losses[-1]), xytext=(10, 0), textcoords="offset points",
                        va="center", fontsize=10)
            values.append(losses[-1])
    _hline(ax, optimum)
    if not zoom:  # for scale: what knowing nothing costs
        ax.axhline(math.log(vocab_size), color="grey", linestyle=":",
                   label=f"uniform guess, ln {vocab_size} ({math.log(vocab_size):.4f})")
        values.append(math.log(vocab_size))
    ref = values + ([optimum] if drawable_loss(optimum) else [])
    lo, hi = min(ref), max(ref)
    pad = max(0.25 * (hi - lo), 0.01) if zoom else max(0.1 * (hi - lo), 0.05)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-1, 1)
    ax.set_xticks([0], [label])
    ax.set(ylabel="mean cross-entropy (nats)",
           title=("zoom: the gap to the optimum" if zoom else "its one evaluation (exact, whole splits)"))
    ax.legend(fontsize=8, loc="upper left" if zoom else "center right")
    ax.grid(alpha=0.3, axis="y")


def _draw_table(fig, ax, probs: np.ndarray, labels: list[str], counts: np.ndarray, counted: str) -> None:
    from matplotlib.colors import PowerNorm

    ids, which = shown_tokens(counts)
    why = f"chosen by {counted}; " if len(ids) < len(counts) else ""
    sub = probs[np.ix_(ids, ids)]  # (k,k) rows and columns of the shown tokens
    # sqrt colour scale: most mass sits in a few cells; this keeps the rest visible.
    im = ax.imshow(sub, cmap="Blues", norm=PowerNorm(gamma=0.5, vmin=0.0, vmax=float(sub.max())))
    shown = drawable([labels[i] for i in ids])
    size = max(4.5, min(8.0, 420 / max(len(ids), 1)))  # 65 tokens: about 6.5 pt
    ax.set_xticks(range(len(ids)), shown, fontsize=size, rotation=90)
    ax.set_yticks(range(len(ids)), shown, fontsize=size)
    ax.tick_params(length=2, pad=1)
    ax.set(xlabel="next character", ylabel="current character",
           title=f"P(next | current), softmax of each row\n{which}\n({why}\\n newline, ␣ space)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="probability (sqrt scale)")


def image_format(fig, out: Path) -> str:
    """The format `out`'s suffix names where matplotlib writes it, else PNG.

    Always passed explicitly: the figure is drawn into a buffer (then renamed
    into place), and an unknown suffix must not fail after the drawing.
    """
    ext = out.suffix[1:].lower()
    return ext if ext in fig.canvas.get_supported_filetypes() else "png"


def draw_run(records: list[dict], probs: np.ndarray, labels: list[str], *, optimum: float | None, title: str,
             counts: np.ndarray | None = None, fit: bool = False):
    """The figure: the loss over the run, a zoom on its last 90% with the optimum, and the heatmap.

    labels: each token as shown (bigram.core.display.visible). counts: each token's
    count in the corpus, ranking the heatmap's rows when they do not all fit (default:
    the table's own stationary distribution). A single evaluation (a fit) is drawn
    as labelled markers.
    """
    fig = new_figure(figsize=(17, 9.5), dpi=DPI)  # the saved dpi: the layout's text sizes are reused by the draw
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 1.2])
    full, zoom, table = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[:, 1])
    curves = loss_curves(records)
    steps = sorted({x for at, _ in curves.values() for x in at})
    if not steps:
        for ax in (full, zoom):
            ax.text(0.5, 0.5, "no losses in metrics.jsonl", ha="center", va="center", transform=ax.transAxes)
    elif len(steps) == 1:
        label = "fit: closed form, no training steps" if fit else f"step {steps[0]}"
        _draw_points(full, curves, optimum, label, len(labels), zoom=False)
        _draw_points(zoom, curves, optimum, label, len(labels), zoom=True)
    else:
        _draw_losses(full, curves, optimum, len(labels), _kind(records))
        _draw_zoom(zoom, curves, optimum)
    counted = "count in the corpus" if counts is not None else "frequency in the table's own samples"
    _draw_table(fig, table, probs, labels, stationary(probs) if counts is None else np.asarray(counts), counted)
    fig.suptitle(drawable([title])[0], parse_math=False)  # a path or name with two $ signs is text, not TeX
    _layout(fig)
    return fig


def _layout(fig) -> None:
    """tight_layout's one measuring pass, leaving no layout engine on the figure.

    fig.tight_layout() leaves a placeholder engine behind, and savefig draws a
    figure that has any engine twice (a dry run first): the drawing is the
    slow part of `bigram plot`, so it is done once.
    """
    from matplotlib.layout_engine import TightLayoutEngine

    TightLayoutEngine().execute(fig)


def plot_table(out: str | Path, probs: np.ndarray, tokenizer, config: dict, history: list[dict], *,
               optimum: float | None, title: str, corpus=None) -> Path:
    """plot_run for a model's parts: probs (V,V), its tokenizer, config.json and metrics.jsonl records.

    The heatmap's tokens are ranked by their counts in `corpus` (a Corpus in this
    vocabulary), else by those recorded when trained.
    """
    from bigram.core.checkpoint import recorded_token_counts
    from bigram.core.display import token_labels

    counts = recorded_token_counts(config, tokenizer.vocab_size) if corpus is None else corpus.token_counts()
    return plot_run(out, history, probs, token_labels(tokenizer), optimum=optimum, title=title, counts=counts,
                    fit="fit" in config)


def plot_checkpoint(ckpt_dir: str | Path, out: str | Path, *, data=None, warn=lambda msg: None) -> Path:
    """`bigram plot`: a checkpoint drawn from its files alone, with no backend and so no framework loaded.

    The table is read with safetensors' NumPy loader (every check of
    load_checkpoint) and its rows' softmax taken in float64. `data`: a corpus
    path whose train MLE is the optimum line (else the one train or fit
    recorded); warn(msg) hears what the drawing leaves out.
    """
    from bigram.core.checkpoint import load_checkpoint, recorded_metric
    from bigram.core.generate import softmax_rows
    from bigram.core.metrics import read_metrics

    ck = load_checkpoint(ckpt_dir)
    history = read_metrics(ckpt_dir)
    if not history:
        warn(f"warning: {ckpt_dir} has no metrics.jsonl; the loss panel is empty")
    recorded, corpus = recorded_metric(ck.config, "optimum_train_loss"), None
    optimum = recorded if drawable_loss(recorded) else None
    if data is not None:  # the optimum of the corpus given, which also ranks the heatmap's rows
        from bigram.core.evaluate import load_corpus_for
        from bigram.core.optimum import optimal_loss

        corpus, counts, warnings = load_corpus_for(ck, data)
        for w in warnings:
            warn(w)
        optimum = optimal_loss(counts["train"])
    elif recorded is None:
        warn("warning: the checkpoint records no optimum, so the optimum line is left out; "
             "pass --data FILE to draw it")
    elif optimum is None:
        warn(f"warning: the checkpoint's recorded optimum {recorded:g} is not a loss (an edited config.json), so "
             "the optimum line is left out; pass --data FILE to draw it")
    backend = ck.config.get("backend", "unknown")
    title = f"bigram {ckpt_dir} (trained by backend {backend}, step {ck.step})"
    return plot_table(out, softmax_rows(ck.weights), ck.tokenizer, ck.config, history, optimum=optimum,
                      corpus=corpus, title=title)


def plot_run(out: str | Path, records: list[dict], probs: np.ndarray, labels: list[str], *,
             optimum: float | None, title: str, counts: np.ndarray | None = None, fit: bool = False) -> Path:
    """Write draw_run's figure to `out` (replaced whole, never through a link); returns its path."""
    out = Path(out)
    if out.parent and not out.parent.exists():
        raise BigramError(f"directory {out.parent} for --out does not exist; create it or choose another --out")
    _check_target(out)
    fig = draw_run(records, probs, labels, optimum=optimum, title=title, counts=counts, fit=fit)
    buf = io.BytesIO()
    fmt = image_format(fig, out)
    # zlib's fastest level: half the time of the default for a fifth more bytes (a plot is mostly white)
    fig.savefig(buf, dpi=DPI, format=fmt, **({"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}))
    write_file_atomic(out, buf.getvalue())  # a rename: a link at `out` would be replaced, never written through
    return out


def _check_target(out: Path) -> None:
    """A link (or a FIFO, a directory) where the PNG goes is the user's: refuse before drawing."""
    if holds_a_file(out) and not _is_image(out):  # a plot replaces only an image: never notes, weights or data
        ext = out.suffix[1:].lower()
        fmt = (ext if ext in _IMAGE_MAGIC else "png").upper()
        raise BigramError(f"--out {out} exists and is not an image of the format its name gets ({fmt}); bigram "
                          "plot replaces only an earlier plot: choose another --out, or delete that file first")


# The first bytes of each format matplotlib writes; an existing --out must start as its suffix's format does
# (an earlier plot), so a user's archive.gz, pom.xml or song.wav is never taken for an image and replaced.
_PNG = (b"\x89PNG\r\n\x1a\n",)
_IMAGE_MAGIC = {"png": _PNG, "pdf": (b"%PDF",), "ps": (b"%!PS",), "eps": (b"%!PS",), "svg": (b"<?xml", b"<svg"),
                "svgz": (b"\x1f\x8b",), "jpg": (b"\xff\xd8\xff",), "jpeg": (b"\xff\xd8\xff",),
                "tif": (b"II*\x00", b"MM\x00*"), "tiff": (b"II*\x00", b"MM\x00*"), "webp": (b"RIFF",)}


def _is_image(out: Path) -> bool:
    """The file starts as the format its suffix names does (PNG for a suffix matplotlib does not write)."""
    ext = out.suffix[1:].lower()
    with open(out, "rb") as f:  # lstat above: a regular file, not a link
        head = f.read(16)
    if ext == "webp" and head[8:12] != b"WEBP":  # RIFF is also WAV and AVI
        return False
    return head.startswith(_IMAGE_MAGIC.get(ext, _PNG))
