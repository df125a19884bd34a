"""An attacker's review of `bigram bench --report/--compare` and `bigram plot`: each case failed before its fix
(a traceback, a hang, a user's file replaced, a gate that passed on nothing, a tampered report obeyed)."""

from __future__ import annotations

import json
import os
import threading
import warnings

import pytest

from clirun import run_cli, train_checkpoint
from test_attack_fixes import _snapshot, data  # noqa: F401 - the fixture: a small corpus
from test_bench import _saved, synthetic

NP = ["--backend", "numpy"]


def _one_line_error(code, out, err, why):
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and why in err and "Traceback" not in err, err


# ----------------------------------------------------------------------------
# bench --compare


def test_compare_refuses_a_median_too_large_for_a_float(tmp_path):
    good = _saved(tmp_path, "good.json", synthetic(train={"numpy": 1}))
    huge = tmp_path / "huge.json"
    huge.write_text('{"measures": {"train": {"median": {"numpy": 1' + "0" * 400 + '}, "higher_is_better": true}}}')
    _one_line_error(*run_cli(["bench", "--compare", good, "--against", huge]), "is not a number")


def test_compare_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "old.json"
    os.mkfifo(fifo)
    good = _saved(tmp_path, "good.json", synthetic(train={"numpy": 1}))
    result = []
    t = threading.Thread(target=lambda: result.append(run_cli(["bench", "--compare", fifo, "--against", good])),
                         daemon=True)
    t.start()
    t.join(30)
    if not result:  # free the blocked reader
        with open(fifo, "wb"):
            pass
        t.join(5)
        pytest.fail("bench --compare blocked on a FIFO")
    _one_line_error(*result[0], "not a regular file")


def test_compare_refuses_a_report_far_too_large_to_be_one(tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(65 << 20)  # sparse: no disk used
    good = _saved(tmp_path, "good.json", synthetic(train={"numpy": 1}))
    _one_line_error(*run_cli(["bench", "--compare", big, "--against", good]), "far more than a report's")


def test_compare_refuses_reports_that_disagree_on_a_measures_direction(tmp_path):
    old = synthetic(train={"numpy": 1000})
    new = synthetic(train={"numpy": 500})  # 2x slower: a regression, unless the direction is flipped
    new["measures"]["train"]["higher_is_better"] = False
    _one_line_error(*run_cli(["bench", "--compare", _saved(tmp_path, "old.json", old),
                              "--against", _saved(tmp_path, "new.json", new)]), "one of them was edited")


@pytest.mark.parametrize("old, new", [
    (synthetic(generate={"lecture": 1, "numpy": 1}), synthetic(count={"lecture": 1, "numpy": 1})),  # --measures
    (synthetic(train={"lecture": 1, "numpy": 1}), synthetic(train={"lecture": 1, "torch": 1})),  # --backends
    (synthetic(train={"numpy": None}), synthetic(train={"numpy": None})),  # no figures at all
])
def test_compare_that_judges_no_figure_is_not_a_pass(tmp_path, old, new):
    for json_out in ([], ["--json"]):
        _one_line_error(*run_cli(["bench", "--compare", _saved(tmp_path, "old.json", old),
                                  "--against", _saved(tmp_path, "new.json", new), *json_out]), "share no figure")


def test_compare_shows_a_tampered_reports_text_but_never_obeys_it(tmp_path):
    old = synthetic(train={"numpy": 1000})
    new = synthetic(train={"numpy": 1000})
    new["meta"]["command"] = "x\n\x1b[2K\rNo regression | fake"
    new["meta"]["machine"] = {"load_avg": [1e308]}
    new["measures"]["train"]["title"] = "t|\x1b[31mred"
    code, out, err = run_cli(["bench", "--compare", _saved(tmp_path, "old.json", old),
                              "--against", _saved(tmp_path, "new.json", new)])
    assert code == 0, err
    assert "\x1b" not in out and "\r" not in out
    assert "After: Command: `x\\x0a\\x1b[2K\\x0dNo regression | fake`" in out  # one line, escapes shown
    assert "load average at end 1e+308" in out  # not 309 digits
    assert "| t\\|\\x1b[31mred | steps/s | numpy |" in out  # one cell, not two


def test_saved_config_sizes_are_bounded():
    """OLD's sizes are rerun: an edited 10**6 MB corpus or 10**9 rounds would exhaust memory or never end."""
    from bigram.bench import BenchConfig
    from bigram.core.errors import BigramError

    for bad in ({"big_corpus_mb": 10**6}, {"rounds": 10**9}, {"gen_tokens": [1000, 10**12]}, {"threads": 10**6},
                {"train_steps": {"b32": [1, 10**9], "b512": [1, 1]}}):
        with pytest.raises(BigramError, match="not a bench setting .whole numbers here are at most"):
            BenchConfig.from_saved(bad)
    full = BenchConfig()
    assert BenchConfig.from_saved({"big_corpus_mb": 10 * full.big_corpus_mb, "rounds": 50}).rounds == 50


# ----------------------------------------------------------------------------
# bench --report


@pytest.fixture
def fake_run(monkeypatch):
    """run_bench replaced by a report made up at once; `calls` counts the runs."""
    import bigram.bench

    calls = []

    def run_bench(cfg, log=None):
        calls.append(cfg)
        report = {**synthetic(train={"lecture": 1, "numpy": 2}), "targets": []}
        report["measures"]["train"]["ratio"] = {"numpy": 2.0}
        return report

    monkeypatch.setattr(bigram.bench, "run_bench", run_bench)
    return calls


def _make_victim(tmp_path, kind):
    if kind == "notes.md":
        (tmp_path / "r.md").write_text("# my notes\n")
    elif kind == "data.json":
        (tmp_path / "r.json").write_text('{"my": "data"}')
    elif kind == "link":
        (tmp_path / "mine.txt").write_text("mine")
        (tmp_path / "r.json").symlink_to(tmp_path / "mine.txt")
    elif kind == "directory":
        (tmp_path / "r.md").mkdir()


@pytest.mark.parametrize("kind, why", [("notes.md", "is not a bench report"), ("data.json", "is not a bench report"),
                                       ("link", "is a symbolic link"), ("directory", "is a directory")])
def test_report_refuses_a_users_file_link_or_directory_before_running(tmp_path, fake_run, kind, why):
    _make_victim(tmp_path, kind)
    before = (_snapshot(tmp_path), sorted(os.listdir(tmp_path)))
    code, out, err = run_cli(["bench", "--report", tmp_path / "r"])
    _one_line_error(code, out, err, why)
    assert fake_run == []  # refused before the run, not after its minutes
    assert (_snapshot(tmp_path), sorted(os.listdir(tmp_path))) == before
    if kind == "link":
        assert (tmp_path / "r.json").is_symlink()


def test_report_replaces_its_own_earlier_report_and_refuses_a_file_as_its_directory(tmp_path, fake_run):
    for _ in range(2):
        code, _, err = run_cli(["bench", "--report", tmp_path / "r"])
        assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["measures"]["train"]["median"] == {"lecture": 1, "numpy": 2}
    (tmp_path / "file").write_text("x")
    _one_line_error(*run_cli(["bench", "--report", tmp_path / "file" / "r"]), "is not a directory")
    assert len(fake_run) == 2


@pytest.mark.parametrize("prefix", ["", ".", "sub"])
def test_report_prefix_that_names_a_directory_is_refused(tmp_path, monkeypatch, fake_run, prefix):
    """--report "" wrote the hidden ..json and ..md; --report sub/ wrote sub.json beside the directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    _one_line_error(*run_cli(["bench", "--report", prefix]), "names a directory")
    assert fake_run == [] and sorted(os.listdir(tmp_path)) == ["sub"] and not os.listdir(tmp_path / "sub")


# ----------------------------------------------------------------------------
# plot


@pytest.mark.parametrize("line, why", [
    ('{"step": 1' + "0" * 400 + ', "train_loss": 2}', "not a whole number from 0 to 2**53"),
    ('{"step": 1, "train_loss": -1e308, "val_loss": 1e308}', "has a negative train_loss"),
])
def test_plot_refuses_metrics_no_run_writes(tmp_path, data, line, why):  # noqa: F811
    ck = train_checkpoint(tmp_path / "ck", data, steps=3)
    with open(ck / "metrics.jsonl", "a") as f:
        f.write(line + "\n")
    _one_line_error(*run_cli([*NP, "plot", "--checkpoint", ck, "--out", tmp_path / "p.png"]), why)
    assert not (tmp_path / "p.png").exists()


def _edit_config(ck, edit):
    cfg = json.loads((ck / "config.json").read_text())
    edit(cfg)
    (ck / "config.json").write_text(json.dumps(cfg))


def test_plot_draws_a_checkpoint_with_absurd_counts_or_optimum(tmp_path, data):  # noqa: F811
    pytest.importorskip("matplotlib")
    ck = train_checkpoint(tmp_path / "ck", data, steps=3)
    _edit_config(ck, lambda c: (c["corpus"].update(token_counts=[10**30] * len(c["corpus"]["token_counts"])),
                                c["metrics"].update(optimum_train_loss=1e308), c.update(backend="\x1b[31m$x$")))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code, out, err = run_cli([*NP, "plot", "--checkpoint", ck, "--out", tmp_path / "p.png"])
    assert code == 0, err
    assert "recorded optimum 1e+308 is not a loss" in err
    assert not [w for w in seen if issubclass(w.category, (RuntimeWarning, UserWarning))], [str(w) for w in seen]
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name, content", [
    ("backup.tar.gz", b"\x1f\x8b\x08\x00 my archive"),
    ("pom.xml", b'<?xml version="1.0"?><project/>'),
    ("song.wav", b"RIFF\x24\x00\x00\x00WAVEfmt "),
    ("clip.webp", b"RIFF\x24\x00\x00\x00AVI LIST"),
    ("old.pdf", b"\x89PNG\r\n\x1a\n but named .pdf"),
])
def test_plot_out_replaces_only_an_image_of_the_format_its_name_gets(tmp_path, data, name, content):  # noqa: F811
    ck = train_checkpoint(tmp_path / "ck", data, steps=3)
    (tmp_path / name).write_bytes(content)
    before = _snapshot(tmp_path)
    _one_line_error(*run_cli([*NP, "plot", "--checkpoint", ck, "--out", tmp_path / name]), "is not an image")
    assert _snapshot(tmp_path) == before


def test_a_checkpoint_path_that_is_a_file_is_not_called_missing(tmp_path, data):  # noqa: F811
    _one_line_error(*run_cli([*NP, "plot", "--checkpoint", data, "--out", tmp_path / "p.png"]),
                    f"checkpoint directory {data} is not a directory")
