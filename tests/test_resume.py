"""Exact resume: N steps + resume N more == 2N steps, bit for bit, on every backend that declares it.

The default cosine schedule decays over the run's --steps, so each N-step half
passes --decay-steps 2N: the horizon of the 2N-step run it is compared with.
"""

from __future__ import annotations

import json

import pytest

from backends import BACKENDS, params
from clirun import run_cli, small_text


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shakespeare_path):
    """20,000 characters of Tiny Shakespeare: bit identity needs real text, not a megabyte of it."""
    path = tmp_path_factory.mktemp("resume") / "corpus.txt"
    path.write_text(small_text(shakespeare_path, 20_000), encoding="utf-8")
    return path


def _train(backend, data, out, *opts):
    """Always on CPU: bit identity is promised there (CUDA's scatter-add may sum in any order)."""
    code, _, err = run_cli(["--backend", backend, "--device", "cpu", "train", "--data", data, "--out", out,
                            "--max-new-tokens", "0", *opts])
    assert code == 0, err
    return err


def _files(d):
    """Every tensor's dtype, shape and raw bytes (bit identity; the header's key order may vary)."""
    from safetensors.numpy import load

    out = {}
    for name in ("model.safetensors", "optimizer.safetensors"):
        for key, a in load((d / name).read_bytes()).items():
            out[f"{name}:{key}"] = (str(a.dtype), a.shape, a.tobytes())
    return out


def _metrics(d):
    return [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("backend", params(BACKENDS, "exact_resume"))
@pytest.mark.parametrize("evals", [["--eval-interval", "7"], ["--eval-interval", "10", "--eval-batches", "2"],
                                   ["--eval-interval", "7", "--dtype", "float64"]],
                         ids=["exact-eval", "estimated-eval", "float64"])
def test_resume_is_bit_identical(backend, evals, tmp_path, corpus):
    """The eval schedule (7 does not divide 20; estimates draw their own batches) must not touch training."""
    N = 20
    full, half = tmp_path / "full", tmp_path / "half"
    _train(backend, corpus, full, "--steps", str(2 * N), *evals)
    _train(backend, corpus, half, "--steps", str(N), "--decay-steps", str(2 * N), *evals)
    assert _files(half) != _files(full)
    _train(backend, corpus, half, "--resume", half, "--steps", str(N))  # backend from the checkpoint
    assert _files(half) == _files(full)
    a, b = (json.loads((d / "config.json").read_text()) for d in (full, half))
    assert a["batcher_state"] == b["batcher_state"] and a["step"] == b["step"] == 2 * N
    assert a["eval_batcher_state"] == b["eval_batcher_state"] or "--eval-batches" not in evals


def test_resume_keeps_the_training_method(tmp_path, corpus):
    """A textbook run resumes the textbook way: the method decides the exact bits."""
    full, half = tmp_path / "full", tmp_path / "half"
    _train("numpy", corpus, full, "--steps", "20", "--method", "textbook")
    _train("numpy", corpus, half, "--steps", "10", "--decay-steps", "20", "--method", "textbook")
    _train("numpy", corpus, half, "--resume", half, "--steps", "10")
    assert _files(half) == _files(full)
    assert json.loads((half / "config.json").read_text())["train"]["method"] == "textbook"


def test_a_byte_tokenizer_run_resumes_exactly(tmp_path, corpus):
    full, half = tmp_path / "full", tmp_path / "half"
    _train("numpy", corpus, full, "--steps", "20", "--tokenizer", "byte")
    _train("numpy", corpus, half, "--steps", "10", "--decay-steps", "20", "--tokenizer", "byte")
    _train("numpy", corpus, half, "--resume", half, "--steps", "10")
    assert _files(half) == _files(full)


@pytest.mark.parametrize("flag", [["--distributed"], ["--tokenizer", "byte"], ["--method", "textbook"]])
def test_resume_refuses_flags_it_cannot_honour(flag, tmp_path, corpus):
    _train("numpy", corpus, tmp_path / "ck", "--steps", "5")
    code, _, err = run_cli(["--backend", "numpy", "train", "--resume", tmp_path / "ck", "--data", corpus,
                            "--max-new-tokens", "0", *flag])
    assert code == 2 and err.startswith("error:") and flag[0] in err and err.count("\n") == 1


def test_metrics_continue(tmp_path, corpus):
    """metrics.jsonl goes on from the checkpoint: same steps and losses as the uninterrupted run."""
    full, half = tmp_path / "full", tmp_path / "half"
    _train("numpy", corpus, full, "--steps", "40", "--eval-interval", "10")
    _train("numpy", corpus, half, "--steps", "20", "--decay-steps", "40", "--eval-interval", "10")
    with open(half / "metrics.jsonl", "a") as f:  # a record past the checkpoint (a run killed after its save)
        f.write(json.dumps({"step": 30, "train_loss": 9.9, "val_loss": 9.9}) + "\n")
    _train("numpy", corpus, half, "--resume", half, "--steps", "20")
    strip = lambda rs: [(r["step"], r["train_loss"], r["val_loss"]) for r in rs]  # noqa: E731
    assert strip(_metrics(half)) == strip(_metrics(full))
    assert [r["step"] for r in _metrics(half)] == [0, 10, 20, 30, 40]


def test_resume_into_another_out_keeps_the_source(tmp_path, corpus):
    src, dst, full = tmp_path / "src", tmp_path / "dst", tmp_path / "full"
    _train("numpy", corpus, full, "--steps", "10")
    _train("numpy", corpus, src, "--steps", "5", "--decay-steps", "10")
    before = _files(src)
    _train("numpy", corpus, dst, "--resume", src, "--steps", "5")
    assert _files(src) == before and _files(dst) == _files(full)
    assert [r["step"] for r in _metrics(dst)] == [0, 5, 10]


def test_resume_without_steps_finishes_the_run(tmp_path, shakespeare_path):
    """No --steps: train up to the step the interrupted run was going to reach (its target_step)."""
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    ck = tmp_path / "ck"
    _train("numpy", data, ck, "--steps", "12")
    cfg = json.loads((ck / "config.json").read_text())
    cfg["target_step"] = 20  # as if it had been stopped at 12 of 20
    (ck / "config.json").write_text(json.dumps(cfg))
    err = _train("numpy", data, ck, "--resume", ck)
    assert "for 8 steps" in err
    assert json.loads((ck / "config.json").read_text())["step"] == 20


def test_resume_can_switch_backend(tmp_path, corpus):
    """Checkpoints are backend-neutral: a numpy run continues on torch (close, not bit-exact)."""
    import numpy as np
    from safetensors.numpy import load

    full, half = tmp_path / "full", tmp_path / "half"
    _train("numpy", corpus, full, "--steps", "20")
    _train("numpy", corpus, half, "--steps", "10", "--decay-steps", "20")
    _train("torch", corpus, half, "--resume", half, "--steps", "10")
    assert json.loads((half / "config.json").read_text())["backend"] == "torch"
    w = [load((d / "model.safetensors").read_bytes())["token_embedding_table.weight"] for d in (full, half)]
    np.testing.assert_allclose(w[0], w[1], rtol=0, atol=1e-5)


def test_resume_keeps_the_schedule_horizon(tmp_path, shakespeare_path):
    """Resuming an interrupted cosine run decays over the horizon it started with, not over the steps left.

    The horizon here is explicit (--decay-steps); tests/test_interrupt.py resumes a run whose horizon
    defaulted to its --steps, interrupted by a real signal, and matches it bit for bit.
    """
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    full, ck = tmp_path / "full", tmp_path / "ck"
    _train("numpy", data, full, "--steps", "20")
    _train("numpy", data, ck, "--steps", "12", "--decay-steps", "20")
    cfg = json.loads((ck / "config.json").read_text())
    assert cfg["train"]["lr_schedule"] == "cosine" and cfg["train"]["decay_steps"] == 20
    assert cfg["train"]["min_lr"] == pytest.approx(cfg["train"]["optim"]["lr"] / 10)
    cfg["target_step"] = 20  # as if it had been stopped at 12 of 20
    (ck / "config.json").write_text(json.dumps(cfg))
    _train("numpy", data, ck, "--resume", ck)
    assert _files(ck) == _files(full)


def test_a_checkpoint_from_before_schedules_resumes_at_a_constant_lr(tmp_path, shakespeare_path):
    """config.json without lr_schedule was written when every run had a constant lr: it resumes that way."""
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    full, ck = tmp_path / "full", tmp_path / "ck"
    _train("numpy", data, full, "--steps", "20", "--lr-schedule", "constant")
    _train("numpy", data, ck, "--steps", "10", "--lr-schedule", "constant")
    cfg = json.loads((ck / "config.json").read_text())
    for key in ("lr_schedule", "min_lr", "decay_steps"):
        cfg["train"].pop(key)
    (ck / "config.json").write_text(json.dumps(cfg))
    _train("numpy", data, ck, "--resume", ck, "--steps", "10")
    assert _files(ck) == _files(full)


def test_resume_refuses_another_schedule(tmp_path, corpus):
    _train("numpy", corpus, tmp_path / "ck", "--steps", "5")
    code, _, err = run_cli(["--backend", "numpy", "train", "--resume", tmp_path / "ck", "--data", corpus,
                            "--max-new-tokens", "0", "--lr-schedule", "constant"])
    assert code == 2 and err.startswith("error: --lr-schedule constant differs") and err.count("\n") == 1


def test_a_bad_saved_schedule_is_the_checkpoints_fault(tmp_path, corpus):
    """An invalid saved setting names config.json, not a flag the user never typed."""
    ck = tmp_path / "ck"
    _train("numpy", corpus, ck, "--steps", "5")
    cfg = json.loads((ck / "config.json").read_text())
    cfg["train"]["min_lr"] = -1.0
    (ck / "config.json").write_text(json.dumps(cfg))
    code, _, err = run_cli(["--backend", "numpy", "train", "--resume", ck, "--data", corpus,
                            "--max-new-tokens", "0", "--steps", "2"])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: checkpoint {ck} cannot be resumed: config.json's 'train' is invalid (min_lr must")
    assert "--min-lr" not in err


def test_resume_after_a_save_killed_in_the_fallback_gap_restores_dir_first(tmp_path, shakespeare_path, monkeypatch):
    """Only .DIR.old is left (older versions, killed between their fallback's two renames): resume must put it
    back before it writes into DIR, or the loader would see a DIR without a checkpoint."""
    from pathlib import Path

    import bigram.core.train as train_mod

    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    ck = tmp_path / "ck"
    _train("numpy", data, ck, "--steps", "4")
    ck.rename(tmp_path / ".ck.old")  # the gap: DIR renamed away, the new one not yet in place
    seen = []
    real = train_mod.save_checkpoint

    def spy(out, *args, **kwargs):
        seen.append(sorted(p.name for p in Path(out).iterdir()))  # what a kill right now would leave
        return real(out, *args, **kwargs)

    monkeypatch.setattr(train_mod, "save_checkpoint", spy)
    _train("numpy", data, ck, "--resume", ck, "--steps", "2")
    assert {"config.json", "model.safetensors", "optimizer.safetensors"} <= set(seen[0])
    assert not (tmp_path / ".ck.old").exists() and json.loads((ck / "config.json").read_text())["step"] == 6


def test_resume_auto_starts_fresh_continues_a_killed_run_and_stops_at_its_end(tmp_path, shakespeare_path, monkeypatch):
    """--resume auto: no checkpoint in --out -> the plain run; a checkpoint left mid-run (a kill after a periodic
    save) -> continued to the uninterrupted run's bits; the finished checkpoint -> nothing to do, exit 0."""
    import shutil

    import bigram.core.train as train_mod

    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    run = ["--steps", "30", "--save-interval", "10", "--eval-interval", "10"]
    full, auto, mid = tmp_path / "full", tmp_path / "auto", tmp_path / "mid"
    _train("numpy", data, full, *run)
    _train("numpy", data, auto, *run, "--resume", "auto")  # empty --out: starts the run
    assert _files(auto) == _files(full)
    real = train_mod.save_checkpoint

    def keep_step_20(out, state, *args, **kwargs):  # what a SIGKILL just after the save at step 20 leaves
        path = real(out, state, *args, **kwargs)
        if int(state["adamw.step"]) == 20:
            shutil.copytree(out.path if hasattr(out, "path") else out, mid)
        return path

    monkeypatch.setattr(train_mod, "save_checkpoint", keep_step_20)
    _train("numpy", data, tmp_path / "scratch", *run)
    monkeypatch.setattr(train_mod, "save_checkpoint", real)
    assert json.loads((mid / "config.json").read_text())["step"] == 20
    err = _train("numpy", data, mid, *run, "--resume", "auto")
    assert f"resuming {mid} at step 20 for 10 steps" in err
    assert _files(mid) == _files(full)
    strip = lambda rs: [(r["step"], r["train_loss"], r["val_loss"]) for r in rs]  # noqa: E731
    assert strip(_metrics(mid)) == strip(_metrics(full))
    before = _files(full)
    err = _train("numpy", data, full, *run, "--resume", "auto")
    assert "is at step 30, the end of this run; nothing left to train" in err and _files(full) == before


@pytest.mark.parametrize("flag,value", [("--steps", "40"), ("--batch-size", "16"), ("--seed", "7"),
                                        ("--lr", "0.05"), ("--dtype", "float64")])
def test_resume_auto_refuses_another_runs_checkpoint(flag, value, tmp_path, shakespeare_path):
    """A checkpoint in --out made with other settings is another run: one line naming the flag, nothing written."""
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    ck = tmp_path / "ck"
    _train("numpy", data, ck, "--steps", "30")
    before = _files(ck)
    args = {"--steps": "30", flag: value}
    code, _, err = run_cli(["--backend", "numpy", "train", "--data", data, "--out", ck, "--max-new-tokens", "0",
                            "--resume", "auto", *[x for kv in args.items() for x in kv]])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: --resume auto: --out {ck} holds a checkpoint of another run ({flag} ")
    assert _files(ck) == before


def _two_rank_checkpoint(tmp_path, shakespeare_path):
    """A small corpus and a checkpoint whose config.json is as a 2-rank torchrun job saves it; (data, ck, cfg)."""
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    ck = tmp_path / "ck"
    _train("numpy", data, ck, "--steps", "5")
    cfg = json.loads((ck / "config.json").read_text())
    cfg.update(world_size=2, rank_batcher_states=[cfg["batcher_state"]] * 2)
    (ck / "config.json").write_text(json.dumps(cfg))
    return data, ck, cfg


def test_a_distributed_checkpoint_resumes_only_on_its_number_of_ranks(tmp_path, shakespeare_path):
    """Rank r's batches come from child r of W streams: another W is another run, refused naming the saved W."""
    data, ck, _ = _two_rank_checkpoint(tmp_path, shakespeare_path)
    code, _, err = run_cli(["--backend", "numpy", "train", "--resume", ck, "--data", data, "--steps", "2",
                            "--max-new-tokens", "0"])
    assert code == 2 and err.count("\n") == 1, err
    assert f"checkpoint {ck} was written by a torchrun job of 2 ranks and this is one process" in err
    assert f"torchrun --nproc_per_node 2 -m bigram train --distributed --resume {ck}" in err


def test_rank_0_checks_every_ranks_stream_before_a_distributed_resume(tmp_path, shakespeare_path):
    """A tampered stream of rank 1 is refused by rank 0, which reads the checkpoint, in one line naming it:
    left to rank 1, it was rank 1's error and torchrun's traceback for rank 0."""
    from bigram.core import resume as R
    from bigram.core.checkpoint import load_checkpoint
    from bigram.core.errors import BigramError

    _, ck, cfg = _two_rank_checkpoint(tmp_path, shakespeare_path)
    R.check_world(load_checkpoint(ck), ck, True, 2)  # both streams good: no error
    cfg["rank_batcher_states"][1] = {"bit_generator": "PCG64", "state": "tampered"}
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BigramError, match=r"'rank_batcher_states\[1\]' is not a PCG64 state"):
        R.check_world(load_checkpoint(ck), ck, True, 2)
