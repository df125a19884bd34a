"""Files the user owns, found by an attacker's review: each case changed or moved a user's file before."""

from __future__ import annotations

import json
import os

import pytest

from clirun import run_cli, train_checkpoint

NP = ["--backend", "numpy"]


@pytest.fixture
def data(tmp_path, shakespeare_path):
    p = tmp_path / "small.txt"
    p.write_bytes(shakespeare_path.read_bytes()[:5000])
    return p


def _snapshot(path):
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in path.iterdir() if p.is_file()}


@pytest.mark.parametrize("victim", ["notes.txt", "ck/model.safetensors", "ck/config.json", "ck/metrics.jsonl"])
def test_plot_out_never_replaces_a_file_that_is_not_an_image(tmp_path, data, victim):
    ck = train_checkpoint(tmp_path / "ck", data, steps=3)
    (tmp_path / "notes.txt").write_text("my notes")
    before = {**_snapshot(tmp_path), **_snapshot(ck)}
    code, out, err = run_cli([*NP, "plot", "--checkpoint", ck, "--out", tmp_path / victim])
    assert code == 2 and out == "" and "is not an image" in err and len(err.splitlines()) == 1
    assert {**_snapshot(tmp_path), **_snapshot(ck)} == before


def test_plot_skips_non_finite_losses_in_metrics_and_replaces_its_own_image(tmp_path, data):
    pytest.importorskip("matplotlib")
    ck = train_checkpoint(tmp_path / "ck", data, "--eval-interval", "1", steps=3)
    with open(ck / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "train_loss": NaN, "val_loss": Infinity}\n')
    code, _, err = run_cli([*NP, "plot", "--checkpoint", ck, "--out", tmp_path / "p.png"])
    assert code == 0, err
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    code, _, err = run_cli([*NP, "plot", "--checkpoint", ck, "--out", tmp_path / "p.png"])  # its own plot: replaced
    assert code == 0, err


def test_prepare_never_replaces_token_files_without_its_vocab(tmp_path, data):
    d = tmp_path / "nano"
    d.mkdir()
    (d / "train.bin").write_bytes(os.urandom(1000))
    (d / "val.bin").write_bytes(os.urandom(500))
    before = _snapshot(d)
    code, _, err = run_cli(["data", "prepare", data, "--out", d])
    assert code == 2 and "did not write" in err and _snapshot(d) == before


def test_a_users_dot_old_directory_is_never_moved(tmp_path, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".run.old").mkdir()
    (tmp_path / ".run.old" / "notes.txt").write_text("mine")
    code, _, err = run_cli([*NP, "train", "--data", data, "--steps", 2, "--max-new-tokens", 0, "--out", "run"])
    assert code == 0, err
    assert (tmp_path / ".run.old" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "run" / "config.json").is_file() and not (tmp_path / "run" / "notes.txt").exists()


def test_a_stage_without_bigrams_config_is_not_a_checkpoint(tmp_path, data):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (d / "model.safetensors").write_bytes(os.urandom(4096))
    (d / ".bigram-save").mkdir()
    before = _snapshot(d)
    code, _, err = run_cli([*NP, "train", "--data", data, "--steps", 2, "--max-new-tokens", 0, "--out", d])
    assert code == 2 and "not a bigram checkpoint" in err and len(err.splitlines()) == 1
    assert _snapshot(d) == before and (d / ".bigram-save").is_dir()


@pytest.mark.parametrize("field,value", [("eps", -1.0), ("eps", 0.0), ("beta1", 5.0), ("beta2", 1.0), ("beta1", -0.1)])
def test_resume_refuses_tampered_adamw_settings(tmp_path, data, field, value):
    ck = train_checkpoint(tmp_path / "ck", data, steps=2)
    cfg = json.loads((ck / "config.json").read_text())
    cfg["train"]["optim"][field] = value
    (ck / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli([*NP, "train", "--resume", ck, "--data", data, "--steps", 2, "--max-new-tokens", 0])
    assert code == 2 and "config.json" in err and field in err and len(err.splitlines()) == 1, err


def test_cgroup_page_cache_is_room_not_use(tmp_path, monkeypatch):
    """A container's memory.current counts its page cache (a corpus just read or prepared): a train or
    explain that fits once the kernel drops that cache was refused as out of memory."""
    from functools import partial

    from bigram.core import memory

    gib = 1 << 30
    (tmp_path / "cgroup").write_text("0::/job.slice\n")
    group = tmp_path / "sys" / "job.slice"
    group.mkdir(parents=True)
    (group / "memory.max").write_text(f"{8 * gib}\n")
    (group / "memory.current").write_text(f"{int(7.5 * gib)}\n")  # 1.5 GiB in use, 6 GiB of clean cache
    (group / "memory.stat").write_text(f"anon {gib}\nfile {int(6.5 * gib)}\nactive_file {gib // 2}\n"
                                       f"inactive_file {6 * gib}\n")
    room = partial(memory._cgroup_room, tmp_path / "cgroup", tmp_path / "sys")
    assert room() == int(6.5 * gib)
    monkeypatch.setattr(memory, "_cgroup_room", room)
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 64 * gib)
    monkeypatch.setattr(memory, "_rlimit_room", lambda: None)
    memory.check_fits("--batch-size", 4, gib)  # 4 GiB: fits beside the cache
    (group / "memory.stat").write_text(f"anon {int(7.5 * gib)}\ninactive_file 0\n")  # all of it in use
    with pytest.raises(memory.BigramError, match="--batch-size 4 needs about 4.0 GiB"):
        memory.check_fits("--batch-size", 4, gib)


KILLED_PREPARE = """
import os, sys
import bigram.core.prepare as P
P.encode_to_files = lambda *a, **k: os._exit(9)  # dies as a kill -9 mid-encode would
from bigram.cli.app import main
main(["data", "prepare", sys.argv[1], "--out", sys.argv[2]])
"""


def test_a_prepare_killed_midway_is_redone_by_the_next_and_the_users_files_stay(tmp_path, data):
    """A re-prepare killed mid-encode left train.bin and val.bin without vocab.json: every later prepare
    refused the directory as another tool's and said to delete it, the user's files in it included."""
    import subprocess
    import sys

    from clirun import message_lines

    d = tmp_path / "tokens"
    assert run_cli(["data", "prepare", data, "--out", d])[0] == 0
    (d / "notes.txt").write_text("mine")
    assert subprocess.run([sys.executable, "-c", KILLED_PREPARE, str(data), str(d)]).returncode == 9
    code, _, err = run_cli([*NP, "train", "--data", d, "--steps", 1, "--out", tmp_path / "ck", "--max-new-tokens", 0])
    assert code == 2 and len(message_lines(err)) == 1 and "stopped midway" in err and "data prepare" in err
    code, _, err = run_cli(["data", "prepare", data, "--out", d])
    assert code == 0, err
    assert (d / "notes.txt").read_text() == "mine"
    assert run_cli([*NP, "train", "--data", d, "--steps", 1, "--out", tmp_path / "ck", "--max-new-tokens", 0])[0] == 0


def test_a_prepare_into_a_directory_a_train_holds_does_not_blame_another_prepare(tmp_path, data):
    """train and data prepare take the same lock on DIR: the refusal named the wrong command
    ("being prepared by another `bigram data prepare`" while a train was writing there)."""
    from bigram.core.checkpoint import CheckpointDir

    with CheckpointDir.open(tmp_path / "ck"):  # a train's hold on its --out
        code, _, err = run_cli(["data", "prepare", data, "--out", tmp_path / "ck"])
    assert code == 2 and "another bigram command (a train or a data prepare)" in err, err
