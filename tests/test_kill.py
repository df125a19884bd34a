"""kill -9 at random moments while checkpoints are being saved: DIR always loads.

A training subprocess saves every step (--save-interval 1 on a small corpus, so
it spends nearly all its time saving) and is killed with SIGKILL at a random
moment, mostly while a save is in progress (the test waits for the child's
out/.bigram-tmp-PID-* entry to appear, then a random 0-30 ms), then resumed and
killed again. After each kill the checkpoint must load, its three files must
come from one save, its step must never go back, nothing may appear outside
out/, and the run must resume. Children are forked from the test process (no
interpreter start-up per kill), which keeps 30 kills fast. The second variant
starts every kill from a checkpoint in the layout older versions wrote (no
save ids), so the first save over it is what gets killed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import sys
import time

import numpy as np
import pytest

import bigram.cli.app  # noqa: F401 - imported once here, so forked children start training at once
from clirun import run_cli, small_text
from bigram.core import checkpoint as ckmod
from bigram.core.checkpoint import load_checkpoint

KILLS = 20


def _child(argv):
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the child is killed, never closes it
    bigram.cli.app.main([str(a) for a in argv])


def _as_old_layout(out):
    """Rewrite the checkpoint in out/ as older versions wrote it: the three files in out/, no save ids."""
    from safetensors.numpy import load, save

    ck = load_checkpoint(out)
    files = ckmod._encode(ck.state, ck.tokenizer, ck.config, "unused")
    if (out / ".bigram-save").exists():  # older versions never made one
        shutil.rmtree(out / ".bigram-save")
    for name in ("model.safetensors", "optimizer.safetensors"):
        (out / name).write_bytes(save(load(files[name]), metadata={"format": "pt", "bigram_version": "0.1.0"}))
    cfg = json.loads(files["config.json"])
    del cfg["save_id"]
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def _kill_loop(tmp_path, data, kills, seed, old_layout):
    """Run, kill -9, check, resume, ...; returns (kills that hit a save in progress, steps seen)."""
    out = tmp_path / "out"
    first = ["--backend", "numpy", "train", "--data", data, "--steps", 3, "--save-interval", 1,
             "--eval-interval", 10**6, "--out", out, "--max-new-tokens", 0]
    code, _, err = run_cli(first)  # in-process: also imports everything the forked children will need
    assert code == 0, err
    again = ["train", "--resume", out, "--data", data, "--steps", 10**7, "--save-interval", 1, "--max-new-tokens", 0]
    rng = random.Random(seed)
    ctx = multiprocessing.get_context("fork")
    mid_save, steps = 0, [load_checkpoint(out).step]
    for _ in range(kills):
        if old_layout:
            _as_old_layout(out)
        p = ctx.Process(target=_child, args=(again,))
        p.start()
        staged_before = (out / ".bigram-save").exists()
        saving = lambda: any(out.glob(f".bigram-tmp-{p.pid}-*"))  # noqa: E731
        deadline = time.monotonic() + 5
        while not saving() and time.monotonic() < deadline:  # wait for a save to begin (mostly) ...
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.03))  # ... then kill at a random moment inside or after it
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        assert p.exitcode == -signal.SIGKILL, "the child ended before it was killed"
        mid_save += saving() or (not staged_before and (out / ".bigram-save").exists())
        ck = load_checkpoint(out)  # must never raise
        assert all(np.isfinite(a).all() for a in ck.state.values())
        assert ck.config["step"] == ck.step, "config.json and optimizer.safetensors are from different saves"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "small.txt"], "a save wrote outside out/"
        assert ck.step >= steps[-1], "a kill sent the checkpoint back in time"
        steps.append(ck.step)
    return mid_save, steps


@pytest.mark.parametrize("old_layout", [False, True], ids=["checkpoint", "over-old-layout"])
def test_kill_9_during_saves(old_layout, tmp_path, shakespeare_path):
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    seed = int.from_bytes(os.urandom(4), "little")
    kills = 10 if old_layout else KILLS
    mid_save, steps = _kill_loop(tmp_path, data, kills, seed, old_layout)
    print(f"seed {seed}: {kills} kills, {mid_save} inside a save, checkpoint steps {steps}")
    assert len(steps) == kills + 1 and steps[-1] > steps[0]  # the run made progress between kills
    assert mid_save >= kills // 5, f"only {mid_save} of {kills} kills hit a save (seed {seed})"
    # The run goes on, and sweeps away the dead children's half-written entries: only bigram's files remain.
    code, _, err = run_cli(["train", "--resume", tmp_path / "out", "--data", data, "--steps", 1, "--max-new-tokens", 0])
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json", "metrics.jsonl", "model.safetensors", "optimizer.safetensors"]
    assert load_checkpoint(tmp_path / "out").step == steps[-1] + 1
