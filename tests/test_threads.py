"""torch's intra-op threads follow the work (one for small tables), and `--threads N` overrides them.

Why one thread: docs/benchmarks.md and `python benchmarks/threads_sweep.py`.
The speed under load is proven by the benchmark's loaded training slope.
"""

from __future__ import annotations

import pytest

from bigram.core import threads
from clirun import message_lines, run_cli

torch = pytest.importorskip("torch")

TEXT = "the quick brown fox jumps over the lazy dog\nto be or not to be, that is the question\n" * 40


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    threads.request(None)
    torch.set_num_threads(before)


@pytest.fixture
def checkpoint(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    code, _, err = run_cli(["-b", "numpy", "train", "--data", tmp_path / "t.txt", "--steps", 2, "--max-new-tokens", 0,
                            "--out", tmp_path / "ck"])
    assert code == 0, err
    return tmp_path / "ck"


@pytest.mark.parametrize(("V", "cpus", "want"), [
    (65, 16, 1), (256, 16, 1), (1024, 16, 1), (1448, 16, 1), (1449, 16, 2), (2048, 16, 4), (2048, 2, 2),
    (8192, 16, 16), (8192, 1, 1),
])
def test_threads_grow_with_the_table_up_to_the_cpus(V, cpus, want, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", str(cpus))
    assert threads.for_table(V) == want


def test_without_omp_num_threads_the_cpu_affinity_bounds_it(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert threads.for_table(4096) == 3


def test_a_small_table_runs_on_one_thread_whatever_torch_chose(checkpoint):
    torch.set_num_threads(2)  # torch's own default on a 2-core machine
    code, out, err = run_cli(["-b", "torch", "generate", "--checkpoint", checkpoint, "--max-new-tokens", 20])
    assert code == 0, err
    assert torch.get_num_threads() == 1


def test_threads_option_overrides_and_does_not_stick(checkpoint):
    code, _, err = run_cli(["-b", "torch", "--threads", 3, "generate", "--checkpoint", checkpoint])
    assert code == 0, err
    assert torch.get_num_threads() == 3
    code, _, err = run_cli(["-b", "torch", "generate", "--checkpoint", checkpoint])  # the next command chooses again
    assert code == 0, err
    assert torch.get_num_threads() == 1
    code, _, err = run_cli(["-b", "torch", "generate", "--checkpoint", checkpoint, "--threads", 2])  # after it too
    assert code == 0, err
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", ["0", "-2"])
def test_bad_threads_is_one_line(bad, checkpoint):
    code, out, err = run_cli(["-b", "torch", "--threads", bad, "generate", "--checkpoint", checkpoint])
    assert code == 2 and out == ""
    assert message_lines(err) == [f"error: --threads must be a positive integer, got {bad}; pass a value >= 1"]
    assert "Traceback" not in err
