"""Sizes no machine can hold are refused up front (bigram/core/memory.py), not by a slow out-of-memory.

Each refusal is one line naming the option and the largest value that fits, exit
2, before anything is trained or written. The in-process cases pretend the
machine has MEMORY bytes free; the bound each refusal names is then run, and its
measured peak (tracemalloc sees NumPy's allocations) stays within MEMORY: the
estimate is an upper bound, so the bound it names is one that really fits.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import tracemalloc

import pytest

from clirun import message_lines, run_cli, small_text, train_checkpoint

MEMORY = 6 << 20  # what the in-process cases pretend is free
TRAIN_MEMORY = 64 << 20  # train also has the scratch of batches drawn many steps at a time (bigram/core/fast.py)
BOUND = re.compile(r"use at most (--[a-z-]+) (\d+)$")


def pretend_free(monkeypatch, n: int) -> None:
    import bigram.core.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda: n)


@pytest.fixture
def little_memory(monkeypatch):
    pretend_free(monkeypatch, MEMORY)


@pytest.fixture(scope="module")
def small(tmp_path_factory, shakespeare_path):
    """A 20,000-character corpus: its own memory is small beside MEMORY."""
    path = tmp_path_factory.mktemp("mem") / "small.txt"
    path.write_text(small_text(shakespeare_path, 20_000), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ck(tmp_path_factory, small):
    return train_checkpoint(tmp_path_factory.mktemp("mem") / "ck", small)


def refused(argv: list, option: str) -> int:
    """Run argv, which must be refused for `option` in one line; the bound it names."""
    code, out, err = run_cli(argv)
    lines = message_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {option} ") and "of memory" in lines[0], lines[0]
    assert "step 0" not in err, "refused only after training started"
    m = BOUND.search(lines[0])
    assert m and m.group(1) == option, lines[0]
    return int(m.group(2))


def peak_bytes(argv: list) -> int:
    """tracemalloc's peak over one in-process run, which must succeed."""
    run_cli(argv)  # once untraced: the modules it imports are not the sizes' memory
    tracemalloc.start()
    try:
        code, _, err = run_cli(argv)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0, err
    return peak


def explain(data, *sizes) -> list:
    return ["--backend", "numpy", "explain", "--data", data, *sizes]


def train(data, out, *opts) -> list:
    return ["--backend", "numpy", "train", "--data", data, "--out", out, "--max-new-tokens", "0", *opts]


@pytest.mark.usefixtures("little_memory")
def test_explain_refuses_then_its_bound_fits(small):
    bound = refused(explain(small, "--batch-size", "100000"), "--batch-size")
    assert bound >= 1
    assert peak_bytes(explain(small, "--batch-size", bound)) <= MEMORY


def test_explain_names_the_block_size_when_it_is_the_larger(monkeypatch, small):
    pretend_free(monkeypatch, 1 << 20)
    sizes = ["--batch-size", "2", "--block-size", "1500"]
    bound = refused(explain(small, *sizes), "--block-size")
    assert 1 <= bound < 1500
    code, _, err = run_cli(explain(small, "--batch-size", "2", "--block-size", bound))
    assert code == 0, err


@pytest.fixture
def train_memory(monkeypatch):
    pretend_free(monkeypatch, TRAIN_MEMORY)


@pytest.mark.usefixtures("train_memory")
@pytest.mark.parametrize("option, opts", [
    ("--batch-size", ["--batch-size", "10000000", "--steps", "1"]),  # the counts path: ids per position
    ("--batch-size", ["--batch-size", "1000000", "--method", "textbook", "--steps", "1"]),  # logits per position
    ("--steps", ["--steps", "1000000000", "--eval-interval", "1"]),  # a metrics record per evaluation
    ("--eval-batches", ["--eval-batches", "100000000", "--steps", "1"]),  # one loss per estimate batch
])
def test_train_refuses_before_training(option, opts, small, tmp_path):
    refused(train(small, tmp_path / "ck", *opts), option)
    assert not (tmp_path / "ck").exists()


def test_train_textbook_bound_fits(monkeypatch, small, tmp_path):
    pretend_free(monkeypatch, TRAIN_MEMORY)
    opts = ["--method", "textbook", "--steps", "2", "--eval-interval", "2"]
    bound = refused(train(small, tmp_path / "a", "--batch-size", "1000000", *opts), "--batch-size")
    base = peak_bytes(train(small, tmp_path / "b", "--batch-size", "1", *opts))  # the corpus, the counts, a save
    assert peak_bytes(train(small, tmp_path / "c", "--batch-size", bound, *opts)) - base <= TRAIN_MEMORY


@pytest.mark.usefixtures("little_memory")
def test_generate_refuses_then_its_bound_fits(ck):
    argv = ["--backend", "numpy", "generate", "--checkpoint", ck, "--max-new-tokens"]
    bound = refused([*argv, "100000000"], "--max-new-tokens")
    assert peak_bytes([*argv, bound]) <= MEMORY


@pytest.mark.usefixtures("train_memory")
def test_train_refuses_a_huge_sample_before_training(small, tmp_path):
    refused(train(small, tmp_path / "ck", "--steps", "1", "--max-new-tokens", "100000000"), "--max-new-tokens")
    assert not (tmp_path / "ck").exists()


def _limit_address_space():  # so that, were the check missing, the run fails at once instead of swapping
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


@pytest.mark.parametrize("argv", [
    ["explain", "--batch-size", "99999999"],
    ["train", "--batch-size", "2147483647", "--steps", "1", "--max-new-tokens", "0"],
])
def test_real_process_refuses_the_issue_sizes(argv, shakespeare_path, tmp_path):
    """The sizes of issue 12, as a user runs them: one line naming the option, exit 2."""
    p = subprocess.run([sys.executable, "-m", "bigram", "--backend", "numpy", *argv, "--data", shakespeare_path],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120, preexec_fn=_limit_address_space)
    assert p.returncode == 2, p.stderr
    lines = message_lines(p.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"error: {argv[1]} {argv[2]} needs about "), p.stderr
    assert BOUND.search(lines[0]).group(1) == "--batch-size"
