"""Your own splits: --val-fraction (0: no val split, no val loss) and --val-data, on every command that reads data."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

from bigram.core.checkpoint import load_checkpoint

from clirun import message_lines, run_cli, small_text


@pytest.fixture
def files(tmp_path, shakespeare_path):
    """A 60k-character training text and a separate validation text from further on, in the same vocabulary."""
    text = shakespeare_path.read_text(encoding="utf-8")
    data, val = tmp_path / "data.txt", tmp_path / "val.txt"
    data.write_text(text[:60_000], encoding="utf-8")
    vocab = set(text[:60_000])
    val.write_text("".join(c for c in text[200_000:205_000] if c in vocab), encoding="utf-8")
    return data, val


def run_json(argv):
    code, out, err = run_cli(argv)
    assert code == 0, err
    return json.loads(out), err


def one_line_error(argv, needle):
    code, out, err = run_cli(argv)
    assert code == 2 and out == "", (code, out, err)
    assert len(message_lines(err)) == 1 == err.count("\n") and needle in err, err
    return err


def addk_train_loss(text: str, k: float) -> float:
    """Mean NLL over every pair of `text` of the add-k table fitted on `text` itself, from character counts."""
    pairs = Counter(zip(text, text[1:]))
    rows = Counter()
    for (a, _), n in pairs.items():
        rows[a] += n
    V = len(set(text))
    return -sum(n * math.log((n + k) / (rows[a] + V * k)) for (a, _), n in pairs.items()) / (len(text) - 1)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_fit_without_a_val_split_trains_on_everything_and_has_no_val_loss(backend, files, tmp_path):
    data, _ = files
    text = data.read_text(encoding="utf-8")
    for k in (0.0, 1.0):
        got, _ = run_json(["-b", backend, "fit", "--data", data, "--val-fraction", "0", "--smoothing", k,
                           "--out", tmp_path / f"fit{k}", "--json"])
        assert abs(got["train_loss"] - addk_train_loss(text, k)) < 1e-6  # every character, none held out
        assert got["val_loss"] is None
    cfg = load_checkpoint(tmp_path / "fit1.0").config
    assert cfg["metrics"]["val_loss"] is None and cfg["corpus"]["val_fraction"] == 0
    code, out, err = run_cli(["-b", backend, "fit", "--data", data, "--val-fraction", "0", "--out", tmp_path / "t"])
    assert code == 0 and "no val split" in out and "val loss" not in out


def test_train_without_a_val_split_logs_and_reports_no_val_loss(files, tmp_path):
    data, _ = files
    got, err = run_json(["-b", "numpy", "train", "--data", data, "--val-fraction", "0", "--steps", "40",
                         "--eval-interval", "20", "--out", tmp_path / "ck", "--json", "--max-new-tokens", "0"])
    assert got["val_loss"] is None and got["train_loss"] > 0
    assert "vocab" in err and "60,000 train / no val split" in err
    assert [ln for ln in err.splitlines() if ln.startswith("step ")] == [
        ln for ln in err.splitlines() if ln.startswith("step ") and ln.endswith(", no val split (exact)")]
    records = [json.loads(ln) for ln in (tmp_path / "ck" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 20, 40] and all(r["val_loss"] is None for r in records)
    # eval keeps the checkpoint's split unless told otherwise; 0.2 then holds out the last 20%
    ev, _ = run_json(["-b", "numpy", "eval", "--checkpoint", tmp_path / "ck", "--data", data, "--json"])
    assert ev["val_loss"] is None and ev["train_loss"] == got["train_loss"]
    ev, _ = run_json(["-b", "numpy", "eval", "--checkpoint", tmp_path / "ck", "--data", data, "--val-fraction",
                      "0.2", "--json"])
    assert isinstance(ev["val_loss"], float) and ev["train_loss"] != got["train_loss"]
    code, out, _ = run_cli(["-b", "numpy", "eval", "--checkpoint", tmp_path / "ck", "--data", data])
    assert "none (no val split)" in out


@pytest.mark.parametrize("f", ["0.25", "0.5", "0.05"])
def test_val_fraction_moves_the_split_point(f, files, tmp_path):
    data, _ = files
    _, err = run_json(["-b", "numpy", "train", "--data", data, "--val-fraction", f, "--steps", "2", "--out",
                       tmp_path / "ck", "--json", "--max-new-tokens", "0"])
    n = int((1 - float(f)) * 60_000)
    assert f"{n:,} train / {60_000 - n:,} val tokens" in err
    assert load_checkpoint(tmp_path / "ck").config["corpus"]["val_fraction"] == float(f)


def test_val_data_validates_on_another_file_in_the_training_vocabulary(files, tmp_path):
    import bigram

    data, val = files
    got, err = run_json(["-b", "numpy", "train", "--data", data, "--val-data", val, "--steps", "30", "--out",
                         tmp_path / "ck", "--json", "--max-new-tokens", "0"])
    n_val = len(val.read_text(encoding="utf-8"))
    assert f"60,000 train / {n_val:,} val tokens from {val}" in err  # all of --data trains
    # the val loss is the model's exact loss on the other file, measured independently here
    model = bigram.load(tmp_path / "ck", backend="numpy")
    ids = model.tokenizer.encode(val.read_text(encoding="utf-8"))
    W = model.weights.astype(np.float64)
    logp = W - np.log(np.exp(W - W.max(1, keepdims=True)).sum(1, keepdims=True)) - W.max(1, keepdims=True)
    want = -logp[ids[:-1], ids[1:]].mean()
    assert abs(got["val_loss"] - want) < 1e-9
    cfg = load_checkpoint(tmp_path / "ck").config["corpus"]
    assert cfg["val_source"] == str(val) and len(cfg["val_sha256"]) == 64 and cfg["val_fraction"] == 0
    # eval: with --val-data the same val loss; without, none (and a warning), never a slice of the training text
    ev, _ = run_json(["-b", "numpy", "eval", "--checkpoint", tmp_path / "ck", "--data", data, "--val-data", val,
                      "--json"])
    assert ev["val_loss"] == got["val_loss"]
    ev, err = run_json(["-b", "numpy", "eval", "--checkpoint", tmp_path / "ck", "--data", data, "--json"])
    assert ev["val_loss"] is None and "--val-data" in err


def test_unknown_characters_in_val_data_are_named_in_one_line_and_nothing_is_written(files, tmp_path):
    data, _ = files
    bad = tmp_path / "bad.txt"
    bad.write_text("hello wörld\u200d\n", encoding="utf-8")
    for argv in (["train", "--steps", "2", "--out", tmp_path / "ck"], ["fit", "--out", tmp_path / "ck"],
                 ["check", "--steps", "1"]):
        err = one_line_error(["-b", "numpy", *argv, "--data", data, "--val-data", bad], "--val-data")
        assert '"ö"' in err and '"\u200d"' in err and "2 character(s)" in err
    assert not (tmp_path / "ck").exists()
    err = one_line_error(["data", "prepare", data, "--out", tmp_path / "p", "--val-data", bad], '"ö"')
    assert not (tmp_path / "p" / "vocab.json").exists()


@pytest.mark.parametrize("value", ["1", "-0.1", "nan", "inf", "1.5"])
def test_bad_val_fraction_is_one_line(value, files, tmp_path):
    data, _ = files
    for cmd in (["train", "--out", tmp_path / "ck"], ["fit", "--out", tmp_path / "ck"], ["check"]):
        one_line_error(["-b", "numpy", *cmd, "--data", data, "--val-fraction", value], "--val-fraction must be")
    one_line_error(["data", "prepare", data, "--out", tmp_path / "p", "--val-fraction", value], "--val-fraction")
    assert not (tmp_path / "ck").exists()


def test_val_fraction_and_val_data_together_is_one_line(files, tmp_path):
    data, val = files
    one_line_error(["-b", "numpy", "train", "--data", data, "--val-data", val, "--val-fraction", "0.2",
                    "--out", tmp_path / "ck"], "drop --val-fraction")


def test_prepared_directories_keep_their_split(files, tmp_path):
    data, val = files
    code, _, err = run_cli(["data", "prepare", data, "--out", tmp_path / "p", "--val-fraction", "0.25"])
    assert code == 0, err
    meta = json.loads((tmp_path / "p" / "vocab.json").read_text())
    assert (meta["train_tokens"], meta["val_tokens"], meta["val_fraction"]) == (45_000, 15_000, 0.25)
    one_line_error(["-b", "numpy", "train", "--data", tmp_path / "p", "--val-fraction", "0.1", "--out",
                    tmp_path / "ck"], "prepared with --val-fraction 0.25")
    one_line_error(["-b", "numpy", "train", "--data", tmp_path / "p", "--val-data", val, "--out", tmp_path / "ck"],
                   "has its own val split")
    # prepared with --val-data: the same run as the text file with --val-data
    code, _, err = run_cli(["data", "prepare", data, "--out", tmp_path / "pv", "--val-data", val])
    assert code == 0, err
    runs = [run_json(["-b", "numpy", "train", "--data", *src, "--steps", "30", "--out", tmp_path / f"ck{i}",
                      "--json", "--max-new-tokens", "0"])[0]
            for i, src in enumerate(([tmp_path / "pv"], [data, "--val-data", val]))]
    assert runs[0]["train_loss"] == runs[1]["train_loss"] and runs[0]["val_loss"] == runs[1]["val_loss"]
    # prepared with no val split, validated on a file at training time
    code, _, err = run_cli(["data", "prepare", data, "--out", tmp_path / "p0", "--val-fraction", "0"])
    assert code == 0 and "no val split" in err
    got, _ = run_json(["-b", "numpy", "train", "--data", tmp_path / "p0", "--val-data", val, "--steps", "30",
                       "--out", tmp_path / "ck3", "--json", "--max-new-tokens", "0"])
    assert got["val_loss"] == runs[1]["val_loss"]


def test_resume_keeps_the_split_and_is_still_exact(files, tmp_path):
    data, val = files
    base = ["-b", "numpy", "train", "--data", data, "--val-data", val, "--max-new-tokens", "0", "--json", "--lr-schedule",
            "constant"]
    whole, _ = run_json([*base, "--steps", "40", "--out", tmp_path / "whole"])
    run_json([*base, "--steps", "20", "--out", tmp_path / "half"])
    one_line_error(["-b", "numpy", "train", "--resume", tmp_path / "half", "--data", data, "--steps", "20",
                    "--max-new-tokens", "0"], "pass --val-data FILE again")
    again, _ = run_json(["-b", "numpy", "train", "--resume", tmp_path / "half", "--data", data, "--val-data", val,
                         "--steps", "20", "--max-new-tokens", "0", "--json"])
    assert again["train_loss"] == whole["train_loss"] and again["val_loss"] == whole["val_loss"]
    run_json(["-b", "numpy", "train", "--data", data, "--val-fraction", "0.2", "--steps", "5", "--out",
              tmp_path / "f", "--max-new-tokens", "0", "--json"])
    one_line_error(["-b", "numpy", "train", "--resume", tmp_path / "f", "--data", data, "--steps", "5",
                    "--val-fraction", "0.1"], "keeps its split")
    one_line_error(["-b", "numpy", "train", "--resume", tmp_path / "f", "--data", data, "--steps", "5",
                    "--val-data", val], "drop --val-data")


def test_check_runs_on_a_corpus_without_a_val_split(files):
    data, _ = files
    got, _ = run_json(["check", "--backends", "numpy,torch", "--data", data, "--val-fraction", "0", "--steps", "2",
                       "--json"])
    assert got["ok"] is True


def test_the_default_split_is_still_the_lectures(shakespeare, shakespeare_path):
    from bigram.core.data import Corpus

    text = small_text(shakespeare_path, 12_345)
    for c in (Corpus.from_text(text), Corpus.from_text(text, val_fraction=0.1)):
        assert len(c.train) == int(0.9 * len(text)) and c.val_fraction == 0.1
    assert len(shakespeare.train) == int(0.9 * (len(shakespeare.train) + len(shakespeare.val)))
