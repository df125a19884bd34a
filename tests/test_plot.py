"""`bigram plot`: a real PNG, with something drawn in both panels."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from bigram.cli.app import main
from bigram.core.data import bigram_counts
from bigram.core.optimum import optimal_loss

from clirun import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(argv, capsys):
    return run_cli(argv)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shakespeare_path):
    """A short real training run: checkpoint plus metrics.jsonl with several evaluations."""
    d = tmp_path_factory.mktemp("run") / "ck"
    with pytest.raises(SystemExit) as e:
        main(["-b", "numpy", "train", "--data", str(shakespeare_path), "--steps", "200", "--eval-interval", "50",
              "--max-new-tokens", "0", "--out", str(d), "--json"])
    assert e.value.code in (0, None)
    return d


def assert_drawn_png(path):
    """A decodable PNG whose two halves (the two panels) are each far from one flat colour."""
    import matplotlib.image as mpimg

    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)  # (H,W,4) floats in [0,1]
    H, W = img.shape[:2]
    assert H > 400 and W > 800
    rgb = img[..., :3]
    for half in (rgb[:, : W // 2], rgb[:, W // 2 :]):
        assert half.std() > 0.05  # blank would be 0
        assert len(np.unique(half.reshape(-1, 3), axis=0)) > 50  # lines, text, a colour map


def test_plot_writes_a_png_with_both_panels(trained, tmp_path, capsys):
    # Trained on numpy, drawn by torch: the heatmap is whichever backend's softmax.
    code, out, err = run(["-b", "torch", "plot", "--checkpoint", str(trained)], capsys)
    assert code == 0, err
    assert out.strip() == str(trained / "plot.png")
    assert_drawn_png(trained / "plot.png")


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

def _train(tmp_path, name, data, *extra, steps="200"):
    out = tmp_path / name
    code, _, err = run_cli(["-b", "numpy", "train", "--data", data, "--steps", steps, "--eval-interval", "50",
                            "--max-new-tokens", "0", "--out", out, *extra])
    assert code == 0, err
    return out


def _plot_quietly(argv):
    """run_cli with every warning recorded: a missing glyph would be one."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(argv)
    return code, out, err, [str(w.message) for w in caught]


@pytest.mark.parametrize("vocab", [65, 97, 256])
def test_plots_at_each_vocabulary_size_are_drawn_pngs_at_the_requested_path(vocab, tmp_path, shakespeare_path):
    text = shakespeare_path.read_text(encoding="utf-8")
    data = tmp_path / "d.txt"
    extra = []
    if vocab == 97:  # every printable ASCII character and a tab: 95 + 2
        text += "".join(chr(c) for c in range(32, 127)) + "\t\n"
    if vocab == 256:
        extra = ["--tokenizer", "byte"]
    data.write_text(text, encoding="utf-8")
    ck = _train(tmp_path, "ck", data, *extra)
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
    from bigram.core.plot import draw_run, pyplot

    model = bigram.fit(shakespeare, backend="numpy")
    fig = draw_run(model.history, model.probs, model.vocab, optimum=model.optimum_train_loss, title="t",
                   counts=model.token_counts(), fit=True)
    try:
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
    finally:
        pyplot().close(fig)


def test_the_zoom_panel_shows_the_last_90_percent_against_the_optimum(trained):
    import bigram
    from bigram.core.plot import draw_run, pyplot

    model = bigram.load(trained, backend="numpy")
    fig = draw_run(model.history, model.probs, model.vocab, optimum=model.optimum_train_loss, title="t")
    try:
        full, zoom = fig.axes[:2]
        assert full.get_ylim()[1] > 4.5  # the whole run, from the untrained table's 4.7
        lo, hi = zoom.get_xlim()
        assert 10 < lo < 25 and hi > 200  # steps 20 to 200 of a 200-step run
        ylo, yhi = zoom.get_ylim()
        finals = [r for r in model.history if r["step"] == 200][0]
        assert ylo < model.optimum_train_loss < finals["train_loss"] < finals["val_loss"] < yhi < 3.0
        steps = sorted({int(x) for line in zoom.get_lines() for x in line.get_xdata() if len(line.get_xdata()) > 2})
        assert steps and min(steps) >= 20  # step 0 is left out of the zoom
        assert any(np.allclose(line.get_ydata(), model.optimum_train_loss) for line in zoom.get_lines())
    finally:
        pyplot().close(fig)
