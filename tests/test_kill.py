"""kill -9 at random moments while checkpoints are being saved: DIR always loads.

A training subprocess saves every step (--save-interval 1 on a small corpus, so
it spends nearly all its time saving) and is killed with SIGKILL at a random
moment, mostly while a save is in progress (the test waits for the child's
.out.tmp-PID-* directory to appear, then a random 0-30 ms), then resumed and
killed again. After each kill the checkpoint must load,
its step must never go back, and the run must resume. Children are forked from
the test process (no interpreter start-up per kill), which keeps 25 kills fast.
"""

from __future__ import annotations

import multiprocessing
import os
import random
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


def _kill_loop(tmp_path, data, kills, seed):
    """Run, kill -9, check, resume, ...; returns (kills that hit a save in progress, steps seen)."""
    out = tmp_path / "out"
    first = ["--backend", "numpy", "train", "--data", data, "--steps", 3, "--save-interval", 1,
             "--eval-interval", 10**6, "--out", out, "--sample", 0]
    code, _, err = run_cli(first)  # in-process: also imports everything the forked children will need
    assert code == 0, err
    again = ["train", "--resume", out, "--data", data, "--steps", 10**7, "--save-interval", 1, "--sample", 0]
    rng = random.Random(seed)
    ctx = multiprocessing.get_context("fork")
    mid_save, steps = 0, [load_checkpoint(out).step]
    for _ in range(kills):
        p = ctx.Process(target=_child, args=(again,))
        p.start()
        saving = lambda: any(tmp_path.glob(f".out.tmp-{p.pid}-*"))  # noqa: E731
        deadline = time.monotonic() + 5
        while not saving() and time.monotonic() < deadline:  # wait for a save to begin (mostly) ...
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.03))  # ... then kill at a random moment inside or after it
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        assert p.exitcode == -signal.SIGKILL, "the child ended before it was killed"
        mid_save += any(tmp_path.glob(f".out.tmp-{p.pid}-*")) or (tmp_path / ".out.old").exists()
        ck = load_checkpoint(out)  # must never raise
        assert all(np.isfinite(a).all() for a in ck.state.values())
        assert ck.config["step"] == ck.step, "config.json and optimizer.safetensors are from different saves"
        assert ck.step >= steps[-1], "a kill sent the checkpoint back in time"
        steps.append(ck.step)
    return mid_save, steps


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-fallback"])
def test_kill_9_during_saves(exchange, tmp_path, shakespeare_path, monkeypatch):
    if not exchange:  # the children inherit the patch: they save with the two-rename fallback
        monkeypatch.setattr(ckmod, "_exchange", lambda a, b: False)
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    seed = int.from_bytes(os.urandom(4), "little")
    kills = KILLS if exchange else 10
    mid_save, steps = _kill_loop(tmp_path, data, kills, seed)
    print(f"seed {seed}: {kills} kills, {mid_save} inside a save, checkpoint steps {steps}")
    assert len(steps) == kills + 1 and steps[-1] > steps[0]  # the run made progress between kills
    assert mid_save >= kills // 5, f"only {mid_save} of {kills} kills hit a save (seed {seed})"
    # The run goes on, and its next save sweeps away the dead children's half-written directories.
    code, _, err = run_cli(["train", "--resume", tmp_path / "out", "--data", data, "--steps", 1, "--sample", 0])
    assert code == 0, err
    assert not list(tmp_path.glob(".out.tmp-*")) and not (tmp_path / ".out.old").exists()
    assert load_checkpoint(tmp_path / "out").step == steps[-1] + 1
