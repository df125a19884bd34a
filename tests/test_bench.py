"""The quick benchmark runs end to end and reports every measure with its ratio.

No timing is asserted here (speed is proven by the committed benchmark run);
this checks that the report is complete and well-formed.
"""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch")

EXPECTED = {
    "train_b32", "train_b512", "optimum_lecture_hparams", "optimum_project_defaults", "count_bigrams",
    "startup_help", "train_peak_rss", "startup_torch_no_step", "startup_torch_plot", "train_slope_loaded",
}
# At the quick run's sizes the loaded slope's extra steps take less time than start-up varies by: no figure.
NOT_DECISIVE_WHEN_QUICK = {"train_slope_loaded"}


@pytest.fixture(scope="module")
def report(shakespeare_path):
    import torch

    from bigram.bench import BenchConfig, run_bench

    threads = torch.get_num_threads()
    from backends import BACKENDS

    cfg = BenchConfig.quick_config(data=str(shakespeare_path))
    cfg.rounds = 1  # the quick run's sizes, one round: completeness, not figures
    cfg.slope_busy_cores = 0  # spare the shared CPUs; busy_cores is tested on its own below
    cfg.backends = tuple(BACKENDS)  # the backends under test ($BIGRAM_TEST_BACKENDS)
    try:
        yield run_bench(cfg, log=lambda msg: None)
    finally:
        torch.set_num_threads(threads)


def test_every_measure_is_reported_with_a_ratio(report):
    measures = report["measures"]
    keys = set(measures)
    assert EXPECTED <= keys
    assert any(k.startswith("generate_") for k in keys)
    assert any(k.startswith("encode_memory_") for k in keys) and any(
        k.startswith("encode_") and "memory" not in k for k in keys)
    for key, m in measures.items():
        assert m["ratio"], f"{key} has no contestant besides the lecture"
        for who, ratio in m["ratio"].items():
            if key.startswith("generate_") and "lecture" not in m["median"]:
                continue  # the quadratic baseline is skipped at the largest size, and says so
            if key in NOT_DECISIVE_WHEN_QUICK:
                assert ratio is not None and (math.isnan(ratio) or math.isfinite(ratio)), (key, who, ratio)
                continue
            assert ratio is not None and math.isfinite(ratio) and ratio > 0, (key, who, ratio)


def test_every_backend_is_in_the_training_measures(report):
    for key in ("train_b32", "train_b512", "optimum_lecture_hparams", "optimum_project_defaults"):
        assert {"numpy", "torch"} <= set(report["measures"][key]["ratio"])


def test_targets_are_listed_and_torch_stays_out_of_numpy_runs(report):
    targets = {t["target"]: t for t in report["targets"]}
    assert len(targets) >= 16
    assert targets["torch never imported by the numpy training run"]["met"]
    for t in targets.values():
        assert isinstance(t["met"], bool)


def test_report_is_json_and_markdown(report, tmp_path):
    from bigram.bench import to_markdown
    from bigram.cli.bench import write_report

    md = to_markdown(report)
    write_report(report, md, tmp_path / "run")
    assert json.loads((tmp_path / "run.json").read_text())["measures"].keys() == report["measures"].keys()
    text = (tmp_path / "run.md").read_text()
    assert "| measure |" in text and "| target |" in text and "numpy" in text


def test_cli_rejects_bad_rounds(capsys):
    from bigram.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["bench", "--rounds", "0"])
    assert e.value.code == 2
    assert "--rounds must be a positive integer" in capsys.readouterr().err


def test_memory_probe_sees_numpy_and_mapped_buffers():
    """The encode memory measure counts a NumPy array and an mmap'd buffer alike (tracemalloc alone misses the latter)."""
    import mmap

    import numpy as np

    from bigram.bench.engine import MB, _peak_bytes

    def mapped():
        buf = mmap.mmap(-1, 40_000_000)
        buf[::4096] = b"x" * len(range(0, 40_000_000, 4096))  # touch every page
        return buf

    assert 39 < _peak_bytes(lambda: np.ones(40_000_000, dtype=np.uint8)) / MB < 45
    assert 39 < _peak_bytes(mapped) / MB < 45
    assert _peak_bytes(lambda: None) / MB < 1


def test_memory_probe_reports_the_childs_error():
    from bigram.bench.engine import _peak_bytes

    def boom():
        raise ValueError("no such corpus")

    with pytest.raises(RuntimeError, match="ValueError: no such corpus"):
        _peak_bytes(boom)


def test_bigram_runs_as_users_run_it(report):
    """No pinned threads: each CLI command is what a user types, on bigram's own default threads."""
    assert report["meta"]["config"]["threads"] is None
    commands = [*report["measures"]["startup_torch_no_step"]["commands"].values(),
                report["measures"]["startup_torch_plot"]["command"]]
    assert {c.split(" --backend torch ")[1].split()[0] for c in commands} == {"generate", "plot"}  # --quick's two
    from bigram.bench.engine import NO_STEP_COMMANDS

    assert set(NO_STEP_COMMANDS) == {"generate", "eval", "fit", "vocab", "plot"}  # explain takes an AdamW step
    assert not any("--threads" in c for c in commands)
    slope = report["measures"]["train_slope_loaded"]
    assert set(slope["median"]) == {"lecture", "numpy", "torch"}
    assert "--threads" not in slope["command"]
    targets = {t["target"] for t in report["targets"]}
    assert "`bigram --backend torch generate` wall / `import torch` wall" in targets
    assert "CLI training slope with 0 core(s) busy vs lecture (torch)" in targets


def test_pinned_threads_reach_both_sides(shakespeare_path):
    from bigram.bench.engine import BenchConfig, Setup, _env, _no_step_commands

    s = Setup(BenchConfig.quick_config(data=str(shakespeare_path), threads=2))
    try:
        assert s.torch_threads("lecture") == s.torch_threads("torch") == 2
        assert all(cmd[1:3] == ["--threads", "2"] or cmd[3:5] == ["--threads", "2"]
                   for cmd in _no_step_commands(s).values())
    finally:
        s.close()
    assert not s.tmp.exists()
    assert _env(2)["OMP_NUM_THREADS"] == "2"
    assert "PYTHONDONTWRITEBYTECODE" not in _env(None)  # a user's runs load bigram from __pycache__


def test_default_threads_are_bigrams_own_and_the_lectures_best(shakespeare_path):
    from bigram.bench.engine import BenchConfig, Setup
    from bigram.core import threads

    s = Setup(BenchConfig.quick_config(data=str(shakespeare_path)))
    s.close()
    assert s.torch_threads("lecture") == 1
    assert s.torch_threads("torch") == threads.for_table(s.V) == 1


def test_busy_cores_spin_while_inside_and_are_gone_after():
    import time

    from bigram.bench.engine import busy_cores

    with busy_cores(2) as procs:
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
        cpu = [_cpu_seconds(p.pid) for p in procs]
        time.sleep(0.5)
        assert all(_cpu_seconds(p.pid) > c for p, c in zip(procs, cpu))  # they burn CPU, not sleep
    assert all(p.returncode is not None for p in procs)


def _cpu_seconds(pid: int) -> float:
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_slope_is_the_extra_steps_over_their_extra_time():
    from bigram.bench.engine import _slope

    walls = iter([2.0, 7.5, 1.5, 6.0, 1.8, 6.5])  # small, big, small, big, ...: best 1.5 and 6.0
    assert _slope(lambda n: next(walls), 500, 9500, 3) == pytest.approx(9000 / 4.5)
    noise = iter([3.0, 2.9])
    assert math.isnan(_slope(lambda n: next(noise), 500, 600, 1))  # steps hidden in start-up noise: no figure
