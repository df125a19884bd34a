"""What train prints while it runs: seeded samples every N steps, and losses labelled exact or estimated."""

from __future__ import annotations

import json
import re

import pytest

from bigram.core.display import visible_text

from clirun import message_lines, run_cli, small_text


@pytest.fixture
def data(tmp_path, shakespeare_path):
    path = tmp_path / "small.txt"
    path.write_text(small_text(shakespeare_path, 50_000), encoding="utf-8")
    return path


def train(data, out, *extra, backend="numpy"):
    code, stdout, err = run_cli(["-b", backend, "train", "--data", data, "--out", out, "--steps", "100",
                                 "--eval-interval", "50", "--max-new-tokens", "0", "--json", *extra])
    assert code == 0, err
    return json.loads(stdout), err


def samples(err: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^step (\d+) sample: (.*)$", err, re.M)}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sample_interval_prints_seeded_samples_and_changes_no_number(backend, data, tmp_path):
    got, err = train(data, tmp_path / "a", "--sample-interval", "50", backend=backend)
    shown = samples(err)
    assert sorted(shown) == [0, 50, 100]
    assert len({*shown.values()}) == 3  # the text changes as the model learns
    again, err2 = train(data, tmp_path / "b", "--sample-interval", "50", backend=backend)
    assert samples(err2) == shown  # seeded: a rerun prints the same
    plain, _ = train(data, tmp_path / "c", backend=backend)
    assert (got["train_loss"], got["val_loss"]) == (again["train_loss"], again["val_loss"]) == (
        plain["train_loss"], plain["val_loss"])  # sampling reads the table only
    # the last sample is the saved model's: what `bigram generate` writes from it with the run's seed
    code, text, gerr = run_cli(["-b", backend, "generate", "--checkpoint", tmp_path / "a", "--max-new-tokens", "100"])
    assert code == 0, gerr
    assert shown[100] == visible_text(text[:-1])
    # the sample lines come in order, each after its step's evaluation
    lines = [ln for ln in err.splitlines() if ln.startswith("step ")]
    assert [ln.split(":")[0] for ln in lines] == ["step 0", "step 0 sample", "step 50", "step 50 sample", "step 100",
                                                  "step 100 sample"]


def test_sample_interval_must_be_positive(data, tmp_path):
    code, out, err = run_cli(["-b", "numpy", "train", "--data", data, "--out", tmp_path / "o", "--sample-interval",
                              "0"])
    assert code == 2 and "--sample-interval" in err and len(message_lines(err)) == 1


def test_exact_losses_say_exact(data, tmp_path):
    got, err = train(data, tmp_path / "ck")
    assert got["exact"] is True and got["eval_batches"] is None
    evals = [ln for ln in err.splitlines() if re.match(r"step \d+: ", ln)]
    assert len(evals) == 3 and all(ln.endswith("(exact)") for ln in evals)
    code, out, _ = run_cli(["-b", "numpy", "eval", "--checkpoint", tmp_path / "ck", "--data", data])
    assert "train loss (exact, every position)" in out and "val loss (exact, every position)" in out
    code, out, _ = run_cli(["-b", "numpy", "eval", "--checkpoint", tmp_path / "ck", "--data", data, "--json"])
    assert json.loads(out)["exact"] is True


def test_estimated_losses_say_over_how_many_batches(data, tmp_path):
    import bigram

    got, err = train(data, tmp_path / "ck", "--eval-batches", "3")
    assert got["exact"] is False and got["eval_batches"] == 3
    evals = [ln for ln in err.splitlines() if re.match(r"step \d+: ", ln)]
    assert len(evals) == 3 and all(ln.endswith("(estimates over 3 batches)") for ln in evals)
    records = [json.loads(ln) for ln in (tmp_path / "ck" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["eval_batches"] == 3 for r in records)
    model = bigram.load(tmp_path / "ck", backend="numpy")
    assert model.eval_batches == 3 and "eval_batches=3" in repr(model)
    assert "estimates over 3 batches" in model._repr_html_()
    _, err = train(data, tmp_path / "one", "--eval-batches", "1")
    assert "(estimates over 1 batch)" in err
