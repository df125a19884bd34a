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
    from bigram.cli.plot import optimum_for
    from bigram.core.checkpoint import load_checkpoint

    got = optimum_for(load_checkpoint(trained), None)  # found through config.json's corpus source
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
    assert code == 2 and "pip install 'bigram[plot]'" in err and err.count("\n") == 1
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
