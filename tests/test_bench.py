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
    "startup_help", "train_peak_rss",
}


@pytest.fixture(scope="module")
def report(shakespeare_path):
    import torch

    from bigram.bench import BenchConfig, run_bench

    threads = torch.get_num_threads()
    cfg = BenchConfig.quick_config(data=str(shakespeare_path))
    cfg.rounds = 1  # the quick run's sizes, one round: completeness, not figures
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
