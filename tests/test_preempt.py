"""Preemptible distributed training (2 gloo ranks under torch's own launcher):

- N steps + `--resume` N more == 2N steps, bit for bit (weights, AdamW moments and step, every rank's stream);
- SIGTERM to torchrun: the ranks agree on one step, rank 0 saves, every rank exits 143, and the printed
  command continues the run to the same bits as the uninterrupted one;
- `--resume auto` under `--max-restarts`: ranks SIGKILLed at random moments (mid-step, mid-save),
  and the job still ends on the uninterrupted run's bits.

All compare with one uninterrupted reference run (module fixture). Kept small: each launch pays for
importing torch on every rank.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from clirun import ok
from dist_kill import ROOT, _workers, env, run_with_kills, torchrun

STEPS, SAVE = 600, 40
BASE = ["--backend", "torch", "--device", "cpu", "train", "--distributed", "--batch-size", "8", "--eval-interval",
        "200", "--max-new-tokens", "0"]


def _launch(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(torchrun() + args, cwd=cwd, env=env(), capture_output=True, text=True, timeout=240, **kw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def tensors(d: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    return {f"{n}:{k}": a for n in ("model.safetensors", "optimizer.safetensors")
            for k, a in load((d / n).read_bytes()).items()}


def max_diff(a: Path, b: Path) -> float:
    """The largest difference of any weight, moment or step between two checkpoints (the figure reported;
    same_bits checks the bytes)."""
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    return max(float(np.abs(ta[k].astype(np.float64) - tb[k].astype(np.float64)).max()) for k in ta)


def same_bits(a: Path, b: Path) -> bool:
    ta, tb = tensors(a), tensors(b)
    return ta.keys() == tb.keys() and all(ta[k].dtype == tb[k].dtype and ta[k].tobytes() == tb[k].tobytes()
                                          for k in ta)


def losses(d: Path) -> list[tuple]:
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in map(json.loads, (d / "metrics.jsonl").open())]


def streams(d: Path):
    cfg = json.loads((d / "config.json").read_text())
    return cfg["step"], cfg["world_size"], cfg["rank_batcher_states"]


@pytest.fixture(scope="module")
def job(tmp_path_factory, shakespeare_path):
    """A small corpus and the uninterrupted 2-rank reference run of STEPS steps."""
    pytest.importorskip("torch")
    tmp = tmp_path_factory.mktemp("preempt")
    (tmp / "small.txt").write_bytes(shakespeare_path.read_bytes()[:30_000])
    _launch(["-m", "bigram", *BASE, "--data", "small.txt", "--steps", str(STEPS), "--save-interval", str(SAVE),
             "--out", "ref"], tmp)
    return tmp


def test_distributed_resume_is_bit_identical(job):
    """N steps (decaying over 2N, the horizon of the run compared with) + --resume N more == 2N steps."""
    n = STEPS // 2
    _launch(["-m", "bigram", *BASE, "--data", "small.txt", "--steps", str(n), "--decay-steps", str(STEPS),
             "--out", "half"], job)
    assert not same_bits(job / "half", job / "ref")
    proc = _launch(["-m", "bigram", *BASE, "--data", "small.txt", "--resume", "half", "--steps", str(n)], job)
    assert f"resuming half at step {n}" in proc.stderr
    diff = max_diff(job / "half", job / "ref")
    print(f"distributed N+N vs 2N: largest difference {diff}")
    assert diff == 0 and same_bits(job / "half", job / "ref")
    assert streams(job / "half") == streams(job / "ref")  # both ranks' batch streams
    extra = [r for r in losses(job / "half") if r not in losses(job / "ref")]
    assert [r[0] for r in extra] == [n]  # the first half's closing evaluation, the only record added


def _signalled(job: Path, name: str, sig: signal.Signals, group: bool,
               rank: int | None = None) -> tuple[int, str, float]:
    """Start the 2-rank run, signal it once it has saved (the launcher, its whole group, or one `rank`), return
    (the checkpoint's step, the printed command, seconds from the signal to torchrun's exit); every rank must
    have exited 128 + sig."""
    codes = job / f"codes-{name}"
    codes.mkdir()
    args = BASE + ["--data", "small.txt", "--steps", str(STEPS), "--save-interval", str(SAVE), "--out", name]
    agent = subprocess.Popen(torchrun() + [str(ROOT / "tests" / "dist_kill.py"), str(codes), *args], cwd=job,
                             env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while not (job / name / "config.json").exists():  # training is under way on both ranks
        assert agent.poll() is None and time.monotonic() < deadline, agent.communicate()[1][-3000:]
        time.sleep(0.005)
    t0 = time.monotonic()
    if group:  # Ctrl-C in a terminal: the launcher and every rank get it at once
        os.killpg(agent.pid, sig)
    elif rank is not None:  # `kill PID` on one worker: the others learn of it at the next step's vote
        os.kill(_workers(agent.pid)[rank], sig)
    else:  # a scheduler signalling the launcher, which forwards it to the ranks
        agent.send_signal(sig)
    _, err = agent.communicate(timeout=120)
    took = time.monotonic() - t0
    got = {p.name: int(p.read_text()) for p in codes.iterdir()}
    assert got == {"rank0.code": 128 + sig, "rank1.code": 128 + sig}, err[-3000:]
    m = re.search(rf"interrupted: {sig.name} received: saved checkpoint at step (\d+) to {name}; continue with `(.+)`",
                  err)
    assert m, err[-3000:]
    k = int(m.group(1))
    assert f"interrupted: {sig.name} received: rank 1 stopped at step {k} with the others" in err
    assert err.count("saved checkpoint at step") == 1  # one save, by rank 0
    step, world, rank_streams = streams(job / name)
    assert step == k < STEPS and world == 2 and len(rank_streams) == 2 and rank_streams[0] != rank_streams[1]
    return k, m.group(2), took


def test_ctrl_c_stops_every_rank_at_one_step_with_130(job):
    _signalled(job, "ctrlc", signal.SIGINT, group=True)


def test_sigterm_to_one_rank_stops_every_rank_at_one_step_with_143(job):
    """docs/scale.md: a SIGTERM to one worker, not to torchrun, stops the job as torchrun's own would."""
    _signalled(job, "rank1", signal.SIGTERM, group=False, rank=1)


def test_sigterm_saves_once_every_rank_exits_143_and_the_printed_command_finishes_the_run(job):
    k, command, took = _signalled(job, "sig", signal.SIGTERM, group=False)
    print(f"SIGTERM to exit on 2 ranks: {took:.2f} s, checkpoint at step {k}")
    words = shlex.split(command)  # torchrun --nproc_per_node 2 -m bigram train --distributed --resume sig --data ..
    assert words[:3] == ["torchrun", "--nproc_per_node", "2"] and "--data" in words
    _launch(words[3:] + ["--max-new-tokens", "0"], job)  # torchrun's own launcher, --standalone on this host
    assert same_bits(job / "sig", job / "ref") and losses(job / "sig") == losses(job / "ref")


def test_ranks_killed_at_random_moments_restart_to_the_same_bits(job):
    """5 SIGKILLs (mid-training and mid-save), torchrun --max-restarts, --resume auto: the job finishes on the
    reference's bits; then `eval --distributed` of it equals one process's."""
    args = BASE + ["--data", "small.txt", "--steps", str(STEPS), "--save-interval", str(SAVE)]
    report = run_with_kills(args, job / "killed", kills=5, seed=int(os.environ.get("BIGRAM_KILL_SEED", "1")),
                            cwd=job)
    assert report.returncode == 0, report.log[-3000:]
    kinds = [k["kind"] for k in report.kills]
    assert len(report.kills) == 5 and {"step", "save"} <= set(kinds), report.kills
    assert report.restarts == 5, report.log[-3000:]
    diff = max_diff(job / "killed", job / "ref")
    print(f"5 kills ({kinds}), {report.restarts} restarts: largest difference {diff}")
    assert diff == 0 and same_bits(job / "killed", job / "ref")
    assert losses(job / "killed") == losses(job / "ref") and streams(job / "killed") == streams(job / "ref")
    # a restarted job's checkpoint evaluates across ranks to one process's numbers
    ev = ["-m", "bigram", "eval", "--checkpoint", "killed", "--data", "small.txt", "--json"]
    par = json.loads(_launch(ev + ["--distributed"], job).stdout)
    solo = json.loads(ok(["eval", "--checkpoint", job / "killed", "--data", job / "small.txt", "--json"])[0])
    assert par == solo and par["exact"]


def test_a_rank_that_stops_answering_is_an_error_within_the_timeout(job):
    """Rank 1 frozen (SIGSTOP) mid-training: rank 0's next collective gives up after $BIGRAM_DIST_TIMEOUT with
    one line, instead of torch's 30-minute wait."""
    from dist_kill import _workers

    args = ["-m", "bigram", *BASE, "--data", "small.txt", "--steps", "1000000", "--save-interval", str(SAVE),
            "--out", "frozen"]
    agent = subprocess.Popen(torchrun() + args, cwd=job, env=env(BIGRAM_DIST_TIMEOUT="3"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (job / "frozen" / "config.json").exists() or len(_workers(agent.pid)) < 2:
            assert agent.poll() is None and time.monotonic() < deadline, agent.communicate()[1][-3000:]
            time.sleep(0.01)
        ranks = _workers(agent.pid)
        os.kill(ranks[1], signal.SIGSTOP)
        t0 = time.monotonic()
        while os.path.exists(f"/proc/{ranks[0]}") and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        took = time.monotonic() - t0
        os.kill(ranks[1], signal.SIGKILL)
        _, err = agent.communicate(timeout=120)
    finally:
        if agent.poll() is None:
            agent.kill()
    line = [ln for ln in err.splitlines() if ln.startswith("error: rank 0:")]
    assert len(line) == 1 and "did not answer within 3 s" in line[0], err[-3000:]
    assert 3 <= took < 30, took
