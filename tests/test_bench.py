"""The benchmark engine, piece by piece, at tiny sizes: seconds, not the minute a --quick run takes.

No timing is asserted here (speed is proven by the committed benchmark run,
benchmarks/RESULTS.md); these check that every measure runs and is reported
with ratios from its medians, the targets and their verdicts, the saved JSON
(machine, versions, commit) and its round trip, and `--compare`: direction,
threshold, bad input, and a deliberately slowed backend flagged for real.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
from pathlib import Path

import pytest

from clirun import run_cli

pytest.importorskip("torch")

IN_PROCESS = ("train", "optimum", "generate", "encode", "count")  # the groups that start no process


def tiny_config(data, backends, **kw):
    """Every in-process measure at sizes that take a fraction of a second each."""
    from bigram.bench import BenchConfig

    cfg = BenchConfig(data=str(data), rounds=2, quick=True, backends=tuple(backends), measures=IN_PROCESS,
                      big_corpus_mb=1, gen_tokens=(50, 100, 200), baseline_gen_max=100, opt_tolerance=2.4,
                      opt_check_every=10, opt_max_steps=5_000, train_steps={"b32": (5, 20), "b512": (1, 1)},
                      count_chars_baseline=500, slope_busy_cores=0)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def report(shakespeare_path):
    import torch

    from backends import BACKENDS
    from bigram.bench import run_bench

    threads = torch.get_num_threads()
    # Not the example plugin: its one-hot formulation takes seconds a step at B=512,T=256 (it has its own test below).
    backends = [b for b in BACKENDS if b != "example"]
    try:
        yield run_bench(tiny_config(shakespeare_path, backends), log=lambda msg: None)
    finally:
        torch.set_num_threads(threads)


def test_every_backend_runs_every_in_process_measure(report):
    BACKENDS = report["meta"]["config"]["backends"]
    m = report["measures"]
    expected = {"train_b32", "train_b512", "optimum_lecture_hparams", "optimum_project_defaults", "generate_50",
                "generate_100", "generate_200", "encode_tiny_shakespeare", "encode_memory_tiny_shakespeare",
                "encode_1MB", "encode_memory_1MB", "count_bigrams"}
    assert set(m) == expected  # --measures: the slope and the start-up groups were left out
    for key in ("train_b32", "train_b512", "optimum_lecture_hparams", "optimum_project_defaults", "generate_100"):
        assert set(m[key]["median"]) == {"lecture", *BACKENDS}, key
    assert "lecture" not in m["generate_200"]["median"]  # beyond baseline_gen_max: the quadratic baseline skipped
    assert report["meta"]["backends"] == list(BACKENDS)


def test_ratios_are_between_medians_of_the_rounds(report):
    for key, m in report["measures"].items():
        for who, vals in m["values"].items():
            assert len(vals) == (1 if key.startswith("encode_memory") else 2), (key, who)  # memory: measured once
            assert m["median"][who] == pytest.approx(statistics.median(vals))
        base = m["median"].get("lecture")
        for who, r in m["ratio"].items():
            if base is None:
                assert math.isnan(r)
                continue
            v = m["median"][who]
            assert r == pytest.approx(v / base if m["higher_is_better"] else base / v), (key, who)
            assert r > 0


def test_meta_has_machine_versions_and_commit(report):
    meta = report["meta"]
    assert meta["format"] == "bigram-bench"
    assert meta["machine"]["cpus"] >= 1 and meta["machine"]["platform"] and len(meta["machine"]["load_avg"]) == 3
    v = meta["versions"]
    import numpy
    import torch

    assert v["numpy"] == numpy.__version__ and v["torch"] == torch.__version__ and v["python"]
    assert v["backends"]["numpy"] == {"dist": "bigram", "version": v["bigram"]}
    head = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:
        assert meta["commit"]["sha"] == head.stdout.strip() and isinstance(meta["commit"]["dirty"], bool)
    else:
        assert meta["commit"] is None


def test_commit_is_null_without_git(monkeypatch):
    from bigram.bench.engine import git_commit

    monkeypatch.setenv("PATH", "/nonexistent")  # no git to run: no commit, no traceback
    assert git_commit() is None


def test_targets_judge_what_was_measured_and_mark_the_rest(report):
    from bigram.bench import to_markdown

    import dataclasses

    from bigram.bench import BenchConfig
    from bigram.bench.engine import check_targets

    targets = {t["target"]: t for t in report["targets"]}
    gen = targets["generation 100 tokens vs lecture (numpy)"]
    assert gen["value"] == report["measures"]["generate_100"]["ratio"]["numpy"]
    assert gen["met"] is None  # this tiny run is a --quick one: shown, not judged
    cfg = dataclasses.replace(BenchConfig.from_saved(report["meta"]["config"]), quick=False)
    judged = {t["target"]: t for t in check_targets(report["measures"], cfg, report["meta"]["backends"])}
    assert judged[gen["target"]]["met"] == (gen["value"] >= 40)
    assert not any("slope" in t or "RSS" in t or "--help" in t for t in targets)  # groups left out: no rows
    md = to_markdown(report)
    assert "| measure |" in md and "| target |" in md and "numpy" in md


def test_a_target_not_measured_is_a_dash_not_a_no():
    from bigram.bench import BenchConfig
    from bigram.bench.engine import check_targets

    measures = {"startup_torch_no_step": {"ratio": {"torch generate": 2.0, "torch plot": 0.5}},
                "train_slope_loaded": {"ratio": {"torch": float("nan")}}}
    quick = {t["target"]: t for t in check_targets(measures, BenchConfig.quick_config(), ["torch"])}
    assert all(t["met"] is None for t in quick.values())  # quick sizes decide nothing, not even a clear "no"
    assert quick["`bigram --backend torch plot` wall / `import torch` wall"]["value"] == 2.0  # shown all the same
    full = {t["target"]: t["met"] for t in check_targets(measures, BenchConfig(), ["torch"])}
    assert full["`bigram --backend torch generate` wall / `import torch` wall"] is True  # 0.5 <= 1.3
    assert full["`bigram --backend torch plot` wall / `import torch` wall"] is False  # 2.0 > 1.3
    assert full["`bigram --backend torch eval` wall / `import torch` wall"] is None  # not measured: a dash
    assert full["CLI training slope with 1 core(s) busy vs lecture (torch)"] is False  # a full run must give one


def test_report_round_trips_through_json_and_compares_equal(report, tmp_path):
    from bigram.bench import compare as cmp
    from bigram.bench import to_markdown
    from bigram.cli.bench import write_report

    write_report(report, to_markdown(report), tmp_path / "run.v2")
    assert (tmp_path / "run.v2.md").read_text().startswith("Command: `bigram bench --quick")
    loaded = cmp.load_report(tmp_path / "run.v2.json")
    assert loaded["measures"].keys() == report["measures"].keys()
    assert loaded["meta"]["config"] == json.loads(json.dumps(report["meta"]["config"]))
    rows = cmp.compare(report, loaded)
    assert rows and not cmp.regressions(rows)
    assert all(r.worse_by == pytest.approx(0) for r in rows if r.worse_by is not None)
    from bigram.bench import BenchConfig

    assert BenchConfig.from_saved(loaded["meta"]["config"]) == tiny_config(report["meta"]["corpus"],
                                                                           report["meta"]["backends"])


# ----------------------------------------------------------------------------
# --compare on synthetic reports


def synthetic(**medians) -> dict:
    """A report whose measure key -> {who: median}; keys ending in _s are seconds (lower is better)."""
    return {"meta": {"format": "bigram-bench", "command": "bigram bench", "config": {"rounds": 5}},
            "measures": {k: {"title": k, "unit": "s" if k.endswith("_s") else "steps/s",
                             "higher_is_better": not k.endswith("_s"), "median": v} for k, v in medians.items()}}


def test_compare_flags_a_rate_that_fell_and_a_time_that_rose():
    from bigram.bench import compare as cmp

    old = synthetic(train={"lecture": 100, "numpy": 1000, "torch": 1000}, optimum_s={"lecture": 2, "numpy": 0.1})
    new = synthetic(train={"lecture": 50, "numpy": 880, "torch": 950}, optimum_s={"lecture": 2, "numpy": 0.12})
    rows = {(r.measure, r.who): r for r in cmp.compare(old, new, 0.10)}
    assert rows["train", "numpy"].verdict == "regression"  # 1000/880 = 1.136x slower
    assert rows["train", "numpy"].worse_by == pytest.approx(1000 / 880 - 1)
    assert rows["train", "numpy"].ratio == pytest.approx(0.88)
    assert rows["train", "torch"].verdict == "ok"  # 1.053x: within 10%
    assert rows["optimum_s", "numpy"].verdict == "regression"  # seconds up 20%
    assert rows["train", "lecture"].verdict == "baseline"  # halved, but the lecture's code is never judged
    assert {(r.measure, r.who) for r in cmp.regressions(list(rows.values()))} == {("train", "numpy"),
                                                                                  ("optimum_s", "numpy")}


def test_compare_honours_direction_and_threshold():
    from bigram.bench import compare as cmp

    old = synthetic(train={"numpy": 1000}, optimum_s={"numpy": 1.0})
    faster = synthetic(train={"numpy": 2000}, optimum_s={"numpy": 0.5})  # both better
    assert not cmp.regressions(cmp.compare(old, faster, 0.0))
    assert {r.verdict for r in cmp.compare(faster, old, 0.0)} == {"regression"}  # both worse, each its way
    assert not cmp.regressions(cmp.compare(faster, old, 1.0))  # 2x slower is not worse by more than 100%
    assert cmp.regressions(cmp.compare(faster, old, 0.99))


def test_compare_lists_what_only_one_side_has():
    from bigram.bench import compare as cmp

    rows = cmp.compare(synthetic(train={"numpy": 1, "jax": 1}, gone={"numpy": 1}),
                       synthetic(train={"numpy": 1, "torch": 1, "example": None}))
    verdicts = {(r.measure, r.who): r.verdict for r in rows}
    assert verdicts == {("train", "numpy"): "ok", ("train", "torch"): "only after", ("train", "example"): "only after",
                        ("train", "jax"): "only before", ("gone", "numpy"): "only before"}


def _saved(tmp_path, name, report) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(report))
    return p


def test_cli_compare_two_files_exits_1_on_regression_else_0(tmp_path):
    old = _saved(tmp_path, "old.json", synthetic(train={"lecture": 100, "numpy": 1000}))
    new = _saved(tmp_path, "new.json", synthetic(train={"lecture": 100, "numpy": 850}))
    code, out, err = run_cli(["bench", "--compare", old, "--against", new])
    assert code == 1
    assert "| train | steps/s | numpy | 1.0k | 850.0 | 0.85 | 1.18x worse | **REGRESSION** |" in out
    assert "1 regression(s) worse by more than 10%: train (numpy, 1.18x worse)" in err
    code, out, _ = run_cli(["bench", "--compare", old, "--against", new, "--threshold", "0.2"])
    assert code == 0 and "No regression: none of 1 figures is worse by more than 20%." in out
    code, out, _ = run_cli(["bench", "--compare", old, "--against", new, "--json"])
    assert code == 1 and json.loads(out)["regressions"] == 1 and json.loads(out)["differing_settings"] == []
    odd = synthetic(train={"numpy": 1000})
    odd["meta"].update(config=5, machine=[1], versions="x", commit={"sha": 7}, command=None)  # tampered meta: shown
    code, out, _ = run_cli(["bench", "--compare", _saved(tmp_path, "odd.json", odd), "--against", new])
    assert code == 1 and "Before: Command: `None` - None interleaved rounds" in out


def test_help_gives_the_rounds_each_mode_runs(monkeypatch):
    """--help said 'default 5' while --quick runs 3 (its report line says so)."""
    from bigram.bench import BenchConfig

    monkeypatch.setenv("COLUMNS", "300")  # the option's help on one line
    code, out, _ = run_cli(["bench", "--help"])
    full, quick = BenchConfig().rounds, BenchConfig.quick_config().rounds
    assert code == 0 and f"Interleaved rounds (default {full}, {quick} with --quick)" in " ".join(out.split())


def test_compare_calls_a_figure_that_did_not_move_unchanged(tmp_path):
    """A report compared with itself (the docs' noise check) read '1.00x better' on every row."""
    same = _saved(tmp_path, "same.json", synthetic(train={"lecture": 100, "numpy": 1000}, optimum_s={"numpy": 0.1}))
    code, out, _ = run_cli(["bench", "--compare", same, "--against", same])
    assert code == 0 and "better" not in out and "worse" not in out.split("No regression")[0]
    assert "| train | steps/s | numpy | 1.0k | 1.0k | 1 | unchanged | ok |" in out
    assert "| optimum_s | s | numpy | 0.1 | 0.1 | 1 | unchanged | ok |" in out
    from bigram.bench import compare as cmp

    def change(before, after):
        return cmp._change(cmp.compare(synthetic(train={"numpy": before}), synthetic(train={"numpy": after}))[0])

    assert (change(1000, 999), change(1000, 1001)) == ("unchanged", "unchanged")  # rounds to 1.00x
    assert (change(1000, 990), change(1000, 1020)) == ("1.01x worse", "1.02x better")


def test_compare_says_when_the_runs_measured_different_work(tmp_path):
    a, b = synthetic(train={"numpy": 1}), synthetic(train={"numpy": 1})
    a["meta"]["config"].update(quick=False, gen_tokens=[1000], rounds=5)
    b["meta"]["config"].update(quick=True, gen_tokens=[10], rounds=3)
    code, out, _ = run_cli(["bench", "--compare", _saved(tmp_path, "a.json", a),
                            "--against", _saved(tmp_path, "b.json", b)])
    assert code == 0 and "Note: the runs differ in gen_tokens, quick: " in out  # rounds: noise, not work


@pytest.mark.parametrize("content, why", [
    (b"{not json", "is not JSON"),
    (b"\xff\xfe", "cannot read the bench report"),
    (b'{"meta": {"format": "asv"}, "measures": {"a": {}}}', "its format is 'asv'"),
    (b'[1, 2]', "not a JSON object"),
    (b'{"measures": {"train": {"median": {"numpy": "fast"}, "higher_is_better": true}}}', "is not a number"),
    (b'{"measures": {}}', "no measures"),
    (b"[" * 100_000, "nested too deeply"),
])
def test_cli_compare_refuses_bad_reports_in_one_line(tmp_path, content, why):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    good = _saved(tmp_path, "good.json", synthetic(train={"numpy": 1}))
    for argv in (["--compare", bad, "--against", good], ["--compare", good, "--against", bad]):
        code, out, err = run_cli(["bench", *argv])
        assert code == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and why in err and "Traceback" not in err


@pytest.mark.parametrize("argv, why", [
    (["--compare", "missing.json"], "cannot read the bench report 'missing.json'"),
    (["--against", "x.json"], "--against NEW.json needs --compare OLD.json"),
    (["--compare", "a.json", "--against", "b.json", "--report", "r"], "with --against nothing runs"),
    (["--backends", "numpy,nope"], "--backends: unknown backend 'nope'; installed: "),
    (["--backends", "numpy,numpy"], "name each backend once"),
    (["--measures", "train,speed"], "--measures 'train,speed': unknown 'speed'"),
    (["--threshold", "-0.1"], "--threshold must be a fraction >= 0"),
    (["--rounds", "0"], "--rounds must be a positive integer"),
])
def test_cli_rejects_bad_options_in_one_line(tmp_path, monkeypatch, argv, why):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(["bench", *argv])
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and why in err, err


def test_saved_config_must_be_a_bench_config():
    from bigram.bench import BenchConfig
    from bigram.core.errors import BigramError

    assert BenchConfig.from_saved({"rounds": 3, "future_field": 1}).rounds == 3  # unknown fields: a newer report
    with pytest.raises(BigramError, match="unknown 'warp'"):
        BenchConfig.from_saved({"measures": ["warp"]})
    with pytest.raises(BigramError, match="has no settings"):
        BenchConfig.from_saved(5)
    for bad in ({"rounds": "five"}, {"rounds": 0}, {"gen_tokens": "1000"}, {"gen_tokens": [0]}, {"quick": 1},
                {"backends": [1]}, {"train_steps": {"b32": [1, 2]}}, {"train_steps": {"b32": [1], "b512": [1, 1]}},
                {"opt_tolerance": -1}, {"threads": 1.5}, {"data": 3}):
        with pytest.raises(BigramError, match="not a bench setting"):
            BenchConfig.from_saved(bad)


def test_compare_reruns_the_saved_settings_with_the_options_on_top():
    from bigram.bench import BenchConfig
    from bigram.cli.bench import _config
    from bigram.core.errors import BigramError

    saved = {"meta": {"config": json.loads(json.dumps(
        __import__("dataclasses").asdict(BenchConfig.quick_config(backends=("numpy",), measures=("generate",)))))}}
    cfg = _config(saved, False, dict(rounds=1, backends=None, measures=None, threads=None, data=None))
    assert cfg.quick and cfg.backends == ("numpy",) and cfg.measures == ("generate",) and cfg.rounds == 1
    assert cfg.gen_tokens == BenchConfig.quick_config().gen_tokens
    full = {"meta": {"config": {"quick": False}}}
    with pytest.raises(BigramError, match="is a full run"):
        _config(full, True, dict(rounds=None, backends=None, measures=None, threads=None, data=None))


def test_backends_default_to_the_built_ins_and_all_means_all():
    from bigram.bench.engine import DEFAULT_BACKENDS, resolve_backends
    from bigram.core.plugins import backend_devices, load_backends

    reg = load_backends()
    assert resolve_backends(None) == DEFAULT_BACKENDS == ("numpy", "torch")  # never a test fixture by default
    assert set(resolve_backends("all")) == {n for n, i in reg.backends.items() if "cpu" in backend_devices(reg, i)}
    assert resolve_backends(" torch , numpy ") == ("torch", "numpy")


def test_a_slowed_backend_is_flagged_by_a_real_run(shakespeare_path, tmp_path, monkeypatch):
    """Baseline run, then BIGRAM_EXAMPLE_SLOW_S makes the example plugin sleep per generate call: only it regresses.

    Calls of a millisecond or more (a 10 us call right after the other backend's sleep finds cold caches and
    reads several times slower), no lecture (its quadratic loop would take seconds), 5 rounds."""
    pytest.importorskip("bigram_example_backend")
    import torch

    from bigram.bench import run_bench, to_markdown
    from bigram.cli.bench import write_report

    threads = torch.get_num_threads()
    cfg = tiny_config(shakespeare_path, ("numpy", "example"), measures=("generate",), rounds=5,
                      gen_tokens=(1000, 2000, 4000), baseline_gen_max=0)
    base = run_bench(cfg, log=lambda msg: None)
    write_report(base, to_markdown(base), tmp_path / "base")
    monkeypatch.setenv("BIGRAM_EXAMPLE_SLOW_S", "0.05")  # over 10x each of the example's generate calls
    try:  # a threshold far above a loaded machine's noise (4x slower), far below the slowdown
        code, out, err = run_cli(["bench", "--compare", tmp_path / "base.json", "--threshold", "3"])
    finally:
        torch.set_num_threads(threads)
    assert code == 1, out + err
    rows = [ln.split(" | ") for ln in out.splitlines() if ln.startswith("| generation")]
    verdicts = {(r[0], r[2]): r[-1] for r in rows}
    assert len(rows) == 6, out  # 3 lengths x 2 backends
    assert all(v == "**REGRESSION** |" for (_, who), v in verdicts.items() if who == "example"), out
    assert all(v == "ok |" for (_, who), v in verdicts.items() if who == "numpy"), out
    assert "generate_1000 (example" in err


def test_the_slow_variable_is_checked(monkeypatch):
    pytest.importorskip("bigram_example_backend")
    import numpy as np

    from bigram.core.errors import BigramError
    from bigram_example_backend import ExampleBackend

    monkeypatch.setenv("BIGRAM_EXAMPLE_SLOW_S", "soon")
    with pytest.raises(BigramError, match="BIGRAM_EXAMPLE_SLOW_S='soon' is not a number of seconds"):
        ExampleBackend.create(np.zeros((2, 2)))


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


def test_start_up_group_times_commands_against_import_torch_and_keeps_torch_out_of_numpy(shakespeare_path):
    """Every no-step torch command (plot included) in one measure against `import torch`; --quick runs two of them.
    The numpy training run's probe (a real process) reports that torch was never imported."""
    from bigram.bench.engine import NO_STEP_COMMANDS, QUICK_NO_STEP, BenchConfig, Setup, _process_measures

    cfg = BenchConfig.quick_config(data=str(shakespeare_path))
    cfg.rss_steps = 5
    s = Setup(cfg)
    try:
        startup, no_step, rss = _process_measures(s)
        assert (startup.key, no_step.key, rss.key) == ("startup_help", "startup_torch_no_step", "train_peak_rss")
        plot = importlib_has("matplotlib")
        assert set(no_step.runs) == {"lecture", *(f"torch {c}" for c in QUICK_NO_STEP if plot or c != "plot")}
        s.cfg.quick = False
        assert set(_process_measures(s)[1].extra["commands"]) == {c for c in NO_STEP_COMMANDS if plot or c != "plot"}
        assert rss.runs["numpy"]() > 0
        assert rss.extra["torch_imported"] == [False]
    finally:
        s.close()


def importlib_has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_benchmarks_run_py_takes_the_same_options_and_refuses_bad_ones(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).parents[1] / "benchmarks" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    assert run.main(["--quick", "--backends", "numpy,nope"]) == 2
    assert "--backends: unknown backend 'nope'" in capsys.readouterr().err
    assert run.main(["--quick", "--measures", "slope,warp"]) == 2
    assert "unknown 'warp'" in capsys.readouterr().err
