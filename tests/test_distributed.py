"""Data-parallel training and distributed counts: 2 CPU ranks on gloo equal one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bigram.core.data import Batcher, Corpus, bigram_counts
from bigram.core.distributed import UnionBatcher, per_rank_batch, rank_batcher, rank_seed, shard_bounds
from bigram.core.errors import BigramError
from bigram.core.prepare import prepare
from bigram.core.sampling import seed_streams

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(TORCHRUN + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory, shakespeare_path):
    d = tmp_path_factory.mktemp("small")
    (d / "small.txt").write_bytes(shakespeare_path.read_bytes()[:30_000])
    prepare(d / "small.txt", d / "tokens")
    return d / "tokens"


@given(n=st.integers(0, 200), world=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_shards_overlap_by_one_token_and_sum_to_the_counts(n, world, seed):
    tokens = np.random.default_rng(seed).integers(0, 5, n).astype(np.uint8)
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    total = sum(bigram_counts(tokens[lo:hi], 5) for lo, hi in bounds)
    assert np.array_equal(total, bigram_counts(tokens, 5))
    pairs = [(lo, hi - 1) for lo, hi in bounds if hi > lo]  # pairs [lo, hi-1) of each non-empty shard
    assert all(a[1] == b[0] for a, b in zip(pairs, pairs[1:]))  # contiguous: shard r+1 starts where r ends


def test_rank_streams_and_batch_split():
    one = rank_seed(7, 0, 1)
    assert one.generate_state(4).tolist() == seed_streams(7)["train"].generate_state(4).tolist()
    r0, r1 = rank_seed(7, 0, 2).generate_state(4), rank_seed(7, 1, 2).generate_state(4)
    assert r0.tolist() != r1.tolist()
    assert per_rank_batch(32, 4) == 8
    with pytest.raises(BigramError, match="multiple of 3"):
        per_rank_batch(32, 3)
    data = np.arange(1000, dtype=np.uint16)
    solo = rank_batcher(data, 8, 4, 7, 0, 1)  # one rank: the ordinary training batches
    plain = Batcher(data, 8, 4, seed_streams(7)["train"])
    assert np.array_equal(solo.offsets(3), plain.offsets(3))
    ub = UnionBatcher([rank_batcher(data, 8, 4, 7, r, 2) for r in range(2)])
    x, y = ub.get_batch()
    assert x.shape == (8, 4) and np.array_equal(y[:, :-1], x[:, 1:])


STEPS, BATCH = 30, 8


@pytest.fixture(scope="module")
def two_ranks(small_dir, shakespeare_path, tmp_path_factory):
    """One torchrun launch of 2 gloo ranks: distributed counts of Tiny Shakespeare, then `train --distributed`."""
    pytest.importorskip("torch")
    tmp = tmp_path_factory.mktemp("dist")
    prepare(shakespeare_path, tmp / "ts")
    train_args = ["--backend", "torch", "--device", "cpu", "train", "--distributed", "--data", str(small_dir),
                  "--steps", str(STEPS), "--batch-size", str(BATCH), "--dtype", "float64", "--eval-interval", "10",
                  "--max-new-tokens", "0", "--json", "--out", str(tmp / "ck")]
    proc = _torchrun([str(ROOT / "tests" / "dist_worker.py"), str(tmp / "ts"), str(tmp / "c.npz"), "--"]
                     + train_args, tmp)
    return tmp, proc


def test_two_gloo_ranks_train_like_one_process_on_the_union_batch(two_ranks, small_dir):
    from bigram.backends.torch_backend import TorchBackend
    from bigram.core.backend import AdamWConfig
    from bigram.core.checkpoint import load_checkpoint
    from bigram.core.sampling import init_weights
    from bigram.core.train import TrainConfig, train

    tmp, proc = two_ranks
    assert len(proc.stdout.strip().splitlines()) == 1  # only rank 0 prints its JSON
    assert json.loads(proc.stdout)["steps"] == STEPS
    assert proc.stderr.count("step 0: train loss") == 1  # only rank 0 logs
    ck = load_checkpoint(tmp / "ck")

    corpus = Corpus.load(small_dir)
    cfg = TrainConfig(steps=STEPS, batch_size=BATCH, eval_interval=10, optim=AdamWConfig())
    model = TorchBackend.create(init_weights(corpus.tokenizer.vocab_size, cfg.seed), device="cpu",
                                dtype="float64", optim=cfg.optim)
    union = UnionBatcher([rank_batcher(corpus.train, BATCH, cfg.block_size, cfg.seed, r, 2) for r in range(2)])
    train(model, corpus, cfg, backend="torch", batcher=union, progress=False, log=lambda m: None)
    for key, want in model.get_state().items():
        np.testing.assert_allclose(ck.state[key], want, rtol=0, atol=1e-12, err_msg=key)
    # The per-rank streams matter: one process on its own batch stream ends elsewhere.
    plain = TorchBackend.create(init_weights(corpus.tokenizer.vocab_size, cfg.seed), device="cpu", dtype="float64")
    train(plain, corpus, cfg, backend="torch", progress=False, log=lambda m: None)
    assert np.abs(plain.get_state()["token_embedding_table.weight"] - ck.weights).max() > 1e-3


def test_distributed_counts_equal_single_process_counts_exactly(two_ranks):
    tmp, _ = two_ranks
    got = np.load(tmp / "c.npz")
    corpus = Corpus.load(tmp / "ts")
    V = corpus.tokenizer.vocab_size
    assert int(got["world"]) == 2
    for split in ("train", "val"):
        want = bigram_counts(corpus.split(split), V)
        assert got[split].dtype == np.int64 and np.array_equal(got[split], want), split
    assert got["train"].sum() == len(corpus.train) - 1
    assert np.array_equal(got["short"], bigram_counts(corpus.train[:2], V))


def test_distributed_flag_errors_are_one_line(small_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    base = [sys.executable, "-m", "bigram"]
    for backend, want in (("numpy", "use --backend torch"), ("torch", "needs torchrun's environment")):
        proc = subprocess.run(base + ["--backend", backend, "train", "--distributed", "--data", str(small_dir),
                                      "--steps", "1", "--out", str(tmp_path / "o")],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and want in proc.stderr and "Traceback" not in proc.stderr


def test_core_and_cli_help_never_import_torch():
    code = ("import sys, bigram.core.distributed, bigram.core.prepare, bigram.cli.app, bigram.cli.scale; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_fit_and_eval_count_across_ranks_exactly(small_dir, tmp_path):
    """`fit --distributed` / `eval --distributed` on 2 gloo ranks give one process's numbers."""
    one = tmp_path / "one"
    fit_args = ["-b", "numpy", "fit", "--data", str(small_dir), "--json"]
    solo = subprocess.run([sys.executable, "-m", "bigram", *fit_args, "--out", str(one)],
                          capture_output=True, text=True, check=True)
    par = _torchrun(["-m", "bigram", *fit_args, "--distributed", "--out", str(tmp_path / "two")], tmp_path)
    a, b = json.loads(solo.stdout), json.loads(par.stdout)  # only rank 0 prints
    assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]
    ev = _torchrun(["-m", "bigram", "-b", "numpy", "eval", "--checkpoint", str(one), "--data", str(small_dir),
                    "--distributed", "--json"], tmp_path)
    got = json.loads(ev.stdout)
    assert got["train_loss"] == a["train_loss"] and got["optimum_train_loss"] == a["optimum_train_loss"]


def test_an_unreachable_rendezvous_is_one_line_within_the_timeout(small_dir, tmp_path):
    """torch's TCPStore would retry for 30 minutes (and log a C++ stack trace per retry): here
    $BIGRAM_DIST_TIMEOUT bounds it, and the user sees one line naming the address."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, RANK="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               BIGRAM_DIST_TIMEOUT="2", OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "bigram", "--backend", "torch", "train", "--distributed", "--data",
                           str(small_dir), "--steps", "1", "--out", str(tmp_path / "o")],
                          env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith(f"error: rank 1 could not join the job at 127.0.0.1:{port} within 2 s")
    assert "BIGRAM_DIST_TIMEOUT" in lines[0] and took < 60
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("raw", ["0", "-5", "nan", "soon", "1e9"])
def test_a_bad_timeout_is_one_line(raw):
    from bigram.core.distributed import dist_timeout

    with pytest.raises(BigramError, match=r"BIGRAM_DIST_TIMEOUT=.* is not a number of seconds"):
        dist_timeout({"BIGRAM_DIST_TIMEOUT": raw})
    assert dist_timeout({}) == 300 and dist_timeout({"BIGRAM_DIST_TIMEOUT": " 2.5 "}) == 2.5
