"""SIGINT/SIGTERM save at the last completed step and exit 130/143; NaN never replaces a good checkpoint."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from clirun import message_lines, run_cli, small_text
from bigram.core.checkpoint import load_checkpoint


def _weights(d):
    from safetensors.numpy import load

    return {k: a.tobytes() for n in ("model.safetensors", "optimizer.safetensors")
            for k, a in load((d / n).read_bytes()).items()}


def _start(argv, out, timeout=120):
    """Start `bigram ARGV` and wait for its first periodic checkpoint."""
    p = subprocess.Popen([sys.executable, "-m", "bigram", *map(str, argv)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not (out / "config.json").exists():
        assert p.poll() is None, p.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    return p


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_last_completed_step(sig, code, tmp_path, shakespeare_path):
    data, out = tmp_path / "small.txt", tmp_path / "out"
    data.write_text(small_text(shakespeare_path))
    argv = ["--backend", "numpy", "train", "--data", data, "--steps", 10**7, "--save-interval", 100,
            "--eval-interval", 10**6, "--out", out, "--max-new-tokens", 0]
    p = _start(argv, out)
    time.sleep(0.3)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "Traceback" not in err
    line = message_lines(err)[-1]
    m = re.fullmatch(rf"interrupted: {sig.name} received: saved checkpoint at step (\d+) to (.+); continue with "
                     r"`(bigram train --resume .+)`", line)
    assert m and m.group(2) == str(out), line
    words = shlex.split(m.group(3))
    assert words == ["bigram", "train", "--resume", str(out), "--data", str(data)]  # the corpus it trained on
    k = int(m.group(1))
    ck = load_checkpoint(out)
    assert ck.step == k > 100  # a save at the signal, not just the last periodic one
    if sig == signal.SIGINT:  # the saved state is exact: resuming matches an uninterrupted run
        ref = tmp_path / "ref"
        # the interrupted run's cosine schedule decays over its --steps: the reference must too
        ref_argv = ["--backend", "numpy", "train", "--data", data, "--steps", k + 7, "--decay-steps", 10**7,
                    "--out", ref, "--max-new-tokens", 0]
        assert run_cli(ref_argv)[0] == 0
        # the printed command, run as printed (plus a short --steps) where no corpus can be downloaded
        offline = dict(os.environ, BIGRAM_CACHE_DIR=str(tmp_path / "empty-cache"), BIGRAM_DATA_URL="http://127.0.0.1:9/")
        p2 = subprocess.run([sys.executable, "-m", *words, "--steps", "7", "--max-new-tokens", "0"], env=offline,
                            capture_output=True, text=True, timeout=120)
        assert p2.returncode == 0, p2.stderr
        assert _weights(out) == _weights(ref)


def test_nonfinite_loss_keeps_last_good_checkpoint(tmp_path, shakespeare_path):
    data, out = tmp_path / "small.txt", tmp_path / "out"
    data.write_text(small_text(shakespeare_path))
    code, _, err = run_cli(["--backend", "numpy", "train", "--data", data, "--steps", 100, "--lr", "1e6",
                            "--save-interval", 2, "--out", out, "--max-new-tokens", 0])
    assert code == 2
    line = message_lines(err)[-1]
    m = re.match(r"error: (loss became \S+|the weights became non-finite) at step (\d+) with --lr 1000000.0; "
                 r"lower --lr .*; the last finite checkpoint \(step (\d+)\) is kept in (.+)$", line)
    assert m, line
    ck = load_checkpoint(out)
    assert ck.step == int(m.group(3)) and ck.step % 2 == 0 and ck.step <= int(m.group(2))
    assert all(np.isfinite(a).all() for a in ck.state.values())
    assert "RuntimeWarning" not in err


def test_nonfinite_without_saves_leaves_previous_checkpoint(tmp_path, shakespeare_path):
    data, out = tmp_path / "small.txt", tmp_path / "out"
    data.write_text(small_text(shakespeare_path))
    assert run_cli(["--backend", "numpy", "train", "--data", data, "--steps", 3, "--out", out, "--max-new-tokens", 0])[0] == 0
    before = _weights(out), json.loads((out / "config.json").read_text())
    code, _, err = run_cli(["--backend", "numpy", "train", "--data", data, "--steps", 100, "--lr", "1e6",
                            "--out", out, "--max-new-tokens", 0])
    assert code == 2 and "no checkpoint was written for this run" in err
    assert (_weights(out), json.loads((out / "config.json").read_text())) == before


def test_save_interval_saves_every_n_steps(tmp_path, shakespeare_path, monkeypatch):
    import importlib

    train_mod = importlib.import_module("bigram.core.train")
    real, saved = train_mod.save_checkpoint, []

    def spy(out, state, tokenizer, config):
        saved.append(int(state["adamw.step"]))
        return real(out, state, tokenizer, config)

    monkeypatch.setattr(train_mod, "save_checkpoint", spy)
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    code, _, err = run_cli(["--backend", "numpy", "train", "--data", data, "--steps", 10, "--save-interval", 3,
                            "--out", tmp_path / "o", "--max-new-tokens", 0])
    assert code == 0, err
    assert saved == [3, 6, 9, 10]
    assert load_checkpoint(tmp_path / "o").step == 10
