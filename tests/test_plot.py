"""`bigram plot`: a real PNG, with something drawn in both panels, and no framework loaded to draw it.

Checkpoints are trained once per module (fixtures below) and plotted in-process;
one run in a fresh interpreter checks what `bigram --backend torch plot` imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bigram.core.data import bigram_counts
from bigram.core.optimum import optimal_loss

from clirun import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(argv, capsys=None):
    return run_cli(argv)


def _train(out, data, *extra, steps="200"):
    """A short real training run through the CLI: checkpoint plus metrics.jsonl with several evaluations."""
    code, _, err = run_cli(["-b", "numpy", "train", "--data", data, "--steps", steps, "--eval-interval", "50",
                            "--max-new-tokens", "0", "--out", out, *extra])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shakespeare_path):
    """Tiny Shakespeare, 65 characters, 200 steps: shared by every test that only reads it."""
    return _train(tmp_path_factory.mktemp("run") / "ck", shakespeare_path)


@pytest.fixture(scope="module")
def by_vocab(tmp_path_factory, shakespeare_path, trained):
    """A checkpoint for each vocabulary size the heatmap must handle: 65 (all shown), 97 (the most frequent
    72), 256 (a byte model: only the bytes that occur)."""
    text = shakespeare_path.read_text(encoding="utf-8")
    base = tmp_path_factory.mktemp("vocab")
    (base / "d97.txt").write_text(text + "".join(chr(c) for c in range(32, 127)) + "\t\n",  # printable ASCII, tab
                                  encoding="utf-8")
    return {65: trained, 97: _train(base / "ck97", base / "d97.txt"),
            256: _train(base / "ck256", shakespeare_path, "--tokenizer", "byte")}


def assert_drawn_png(path):
    """A decodable PNG whose two halves (the two panels) are each far from one flat colour."""
    from PIL import Image  # matplotlib's own PNG reader and writer

    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.uint32)  # (H,W,3), decoded in full
    H, W = rgb.shape[:2]
    assert H > 400 and W > 800
    colours = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # (H,W): one integer per distinct colour
    for half in (slice(0, W // 2), slice(W // 2, W)):
        assert rgb[:, half].std() > 0.05 * 255  # blank would be 0
        assert len(np.unique(colours[:, half])) > 50  # lines, text, a colour map


# Runs `bigram ARGV` in a fresh interpreter, as the console script does, then lists what it imported.
NO_FRAMEWORK_PROBE = r"""
import json, sys
from bigram.cli.app import main
try:
    main(json.loads(sys.argv[1]))
    code = 0
except SystemExit as e:
    code = e.code or 0
heavy = ("torch", "jax", "jaxlib", "tensorflow", "matplotlib.pyplot", "tkinter", "PyQt5", "PyQt6", "PySide6",
         "bigram.backends.torch_backend", "bigram.backends.numpy_backend", "bigram.core.plugins")
print("PROBE " + json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in heavy
                                                            or m in heavy)}))
"""


def test_torch_plot_loads_no_framework_and_draws_both_panels(trained, tmp_path):
    """`bigram --backend torch plot` reads the table with NumPy: no torch, no backend, no pyplot or GUI toolkit."""
    pytest.importorskip("torch")  # installed, so a lazy import would really load it
    out = tmp_path / "torch-plot.png"
    argv = ["--backend", "torch", "--device", "cpu", "plot", "--checkpoint", str(trained), "--out", str(out)]
    res = subprocess.run([sys.executable, "-c", NO_FRAMEWORK_PROBE, json.dumps(argv)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith("PROBE "))[6:])
    assert report == {"code": 0, "loaded": []}, res.stderr[-2000:]
    assert res.stdout.splitlines()[0] == str(out)
    assert_drawn_png(out)


def test_the_heatmap_is_the_backends_softmax_of_the_saved_table(trained):
    """Drawn without a backend, the table is still what each backend computes: its rows' softmax."""
    import bigram
    from bigram.core.checkpoint import load_checkpoint
    from bigram.core.generate import softmax_rows

    drawn = softmax_rows(load_checkpoint(trained).weights)
    assert drawn.dtype == np.float64 and np.allclose(drawn.sum(axis=1), 1.0, atol=1e-12)
    names = ["numpy"] + (["torch"] if __import__("importlib").util.find_spec("torch") else [])
    for name in names:
        np.testing.assert_allclose(drawn, bigram.load(trained, backend=name, device="cpu").probs, rtol=1e-5,
                                   atol=1e-9, err_msg=name)


def test_model_plot_draws_through_the_api(trained, tmp_path):
    import bigram

    model = bigram.load(trained, backend="numpy")
    target = tmp_path / "api.png"
    assert model.plot(target) == target
    assert_drawn_png(target)


def test_optimum_line_is_the_train_mle_of_the_checkpoint_corpus(trained, shakespeare):
    import bigram

    got = bigram.load(trained, backend="numpy").optimum_train_loss  # recorded in config.json by train
    want = optimal_loss(bigram_counts(shakespeare.train, shakespeare.tokenizer.vocab_size))
    assert got == pytest.approx(want, abs=1e-12)


def test_loss_curves_skip_nulls():
    from bigram.core.plot import loss_curves

    recs = [{"step": 0, "train_loss": 4.0, "val_loss": None}, {"step": 5, "train_loss": 3.0, "val_loss": 3.5}]
    assert loss_curves(recs) == {"train": ([0, 5], [4.0, 3.0]), "val": ([5], [3.5])}


def test_missing_matplotlib_is_one_line_naming_the_extra(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, out, err = run(["-b", "numpy", "plot", "--checkpoint", str(trained), "--out", str(tmp_path / "x.png")],
                         capsys)
    assert code == 2 and "pip install matplotlib" in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_plot_without_metrics_or_corpus_still_draws_the_table(tmp_path, capsys):
    corpus_path = tmp_path / "tiny.txt"
    corpus_path.write_text("hello world, hello bigram.\n" * 40, encoding="utf-8")
    code, _, err = run(["-b", "numpy", "fit", "--data", str(corpus_path), "--out", str(tmp_path / "ck"), "--json"],
                       capsys)
    assert code == 0, err
    (tmp_path / "ck" / "metrics.jsonl").unlink()
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["corpus"]["source"] = str(tmp_path / "gone.txt")
    del cfg["metrics"]
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    code, _, err = run(["-b", "numpy", "plot", "--checkpoint", str(tmp_path / "ck")], capsys)
    assert code == 0 and "no metrics.jsonl" in err and "optimum line is left out" in err
    assert_drawn_png(tmp_path / "ck" / "plot.png")  # a fit's table with its small vocab
    code, _, err = run(["-b", "numpy", "plot", "--checkpoint", str(tmp_path / "ck"), "--out",
                        str(tmp_path / "nodir" / "p.png")], capsys)
    assert code == 2 and "--out" in err


# ----------------------------------------------------------------------------
# readable at any vocabulary size; the loss where it matters; a fit as labelled points


def _plot_quietly(argv):
    """run_cli with every warning recorded: a missing glyph would be one."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(argv)
    return code, out, err, [str(w.message) for w in caught]


@pytest.mark.parametrize("vocab", [65, 97, 256])
def test_plots_at_each_vocabulary_size_are_drawn_pngs_at_the_requested_path(vocab, tmp_path, by_vocab):
    ck = by_vocab[vocab]
    assert json.loads((ck / "config.json").read_text())["vocab_size"] == vocab
    target = tmp_path / "plots" / f"v{vocab}.png"
    target.parent.mkdir()
    code, out, err, caught = _plot_quietly(["-b", "numpy", "plot", "--checkpoint", ck, "--out", target])
    assert code == 0, err
    assert out.strip() == str(target) and sorted(p.name for p in target.parent.iterdir()) == [target.name]
    assert_drawn_png(target)
    assert not caught and "Glyph" not in err  # no font-glyph warnings


def test_characters_the_font_lacks_are_drawn_as_escapes_without_warnings(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("中文 text\u200d and more text, 中 again.\n" * 50, encoding="utf-8")
    code, _, err = run_cli(["-b", "numpy", "fit", "--data", data, "--out", tmp_path / "ck"])
    assert code == 0, err
    code, _, err, caught = _plot_quietly(["-b", "numpy", "plot", "--checkpoint", tmp_path / "ck"])
    assert code == 0 and not caught and "Glyph" not in err
    from bigram.core.plot import drawable

    assert drawable(["中", "\\u200d", "a", "␣"]) == ["\\u4e2d", "\\u200d", "a", "␣"]


def test_the_heatmap_shows_occurring_or_most_frequent_tokens():
    from bigram.core.plot import MAX_SHOWN, shown_tokens

    ids, which = shown_tokens(np.arange(65))
    assert list(ids) == list(range(65)) and which == "all 65 tokens"
    counts = np.zeros(256, dtype=np.int64)
    counts[[10, 32, 65, 97, 200]] = [5, 9, 1, 3, 2]
    ids, which = shown_tokens(counts)  # a byte model: only the bytes that occur
    assert list(ids) == [10, 32, 65, 97, 200] and which == "the 5 of 256 tokens that occur"
    counts = np.arange(97)[::-1] + 1  # token 0 the most frequent
    ids, which = shown_tokens(counts)
    assert list(ids) == list(range(MAX_SHOWN)) and which.startswith(f"the {MAX_SHOWN} most frequent of 97")


def test_heatmap_labels_are_the_chosen_characters(shakespeare):
    import bigram
    from bigram.core.plot import draw_run

    model = bigram.fit(shakespeare, backend="numpy")
    fig = draw_run(model.history, model.probs, model.vocab, optimum=model.optimum_train_loss, title="t",
                   counts=model.token_counts(), fit=True)
    full, zoom, table = fig.axes[:3]
    assert [t.get_text() for t in table.get_xticklabels()] == model.vocab  # '\n', '␣', '!', ... all 65
    # a fit is one evaluation: labelled markers on a sensible axis, not a dot between -0.04 and 0.04
    for ax in (full, zoom):
        assert ax.get_xlim() == (-1.0, 1.0)
        texts = {t.get_text() for t in ax.texts}
        assert f"train {model.train_loss:.4f}" in texts and f"val {model.val_loss:.4f}" in texts
        assert [t.get_text() for t in ax.get_xticklabels()] == ["fit: closed form, no training steps"]
        lo, hi = ax.get_ylim()
        assert lo < model.optimum_train_loss < model.train_loss < model.val_loss < hi
    assert zoom.get_ylim()[1] - zoom.get_ylim()[0] < 0.1  # close enough to see the gap to the optimum


def test_the_zoom_panel_shows_the_last_90_percent_against_the_optimum(trained):
    import bigram
    from bigram.core.plot import draw_run

    model = bigram.load(trained, backend="numpy")
    fig = draw_run(model.history, model.probs, model.vocab, optimum=model.optimum_train_loss, title="t")
    full, zoom = fig.axes[:2]
    assert full.get_ylim()[1] > 4.5  # the whole run, from the untrained table's 4.7
    assert any(np.allclose(line.get_ydata(), np.log(65)) for line in full.get_lines())  # the uniform guess, ln V
    lo, hi = zoom.get_xlim()
    assert 10 < lo < 25 and hi > 200  # steps 20 to 200 of a 200-step run
    ylo, yhi = zoom.get_ylim()
    finals = [r for r in model.history if r["step"] == 200][0]
    assert ylo < model.optimum_train_loss < finals["train_loss"] < finals["val_loss"] < yhi < 3.0
    steps = sorted({int(x) for line in zoom.get_lines() for x in line.get_xdata() if len(line.get_xdata()) > 2})
    assert steps and min(steps) >= 20  # step 0 is left out of the zoom
    assert any(np.allclose(line.get_ydata(), model.optimum_train_loss) for line in zoom.get_lines())


def test_the_figure_is_drawn_once_and_a_title_with_dollars_is_text(trained, tmp_path, monkeypatch, shakespeare):
    """One layout pass, then savefig's one draw: no layout engine left for savefig to run a second, dry draw.
    A checkpoint path with two $ signs is shown as typed (as TeX, `$\\x$` failed with a traceback).
    With --data, the optimum line is that corpus' train MLE, counted without any backend."""
    from matplotlib.figure import Figure

    from bigram.core.data import Corpus
    from bigram.core.plot import plot_checkpoint

    draws = []
    draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda self, renderer: (draws.append(self), draw(self, renderer))[1])
    ck = tmp_path / "run $\\x$ 1"
    ck.mkdir()
    for f in trained.iterdir():
        (ck / f.name).write_bytes(f.read_bytes())
    other = tmp_path / "reversed.txt"  # the same characters, other bigrams: another optimum than the recorded one
    other.write_text(Path(shakespeare.source).read_text(encoding="utf-8")[::-1], encoding="utf-8")
    said = []
    out = plot_checkpoint(ck, tmp_path / "p.png", data=other, warn=said.append)
    assert len(said) == 1 and str(other) in said[0] and "sha256" in said[0], said  # not the training corpus
    assert len(draws) == 1 and draws[0].get_layout_engine() is None
    assert draws[0].get_suptitle() == f"bigram {ck} (trained by backend numpy, step 200)"
    want = optimal_loss(bigram_counts(Corpus.load(other, tokenizer=shakespeare.tokenizer).train, 65))
    assert abs(want - json.loads((trained / "config.json").read_text())["metrics"]["optimum_train_loss"]) > 1e-4
    zoom = draws[0].axes[1]
    assert any(np.allclose(line.get_ydata(), want, rtol=0, atol=1e-12) for line in zoom.get_lines())
    assert_drawn_png(out)
