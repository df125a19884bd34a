"""CLI fuzzing: random argument vectors, random corpora, random checkpoint files.

The only acceptable outcomes are success (exit 0) or a clean one-line error
(exit 2); an exception escaping main() is a traceback and fails the test.
The CLI runs in-process for speed. Example counts are printed with -s and
stated in docs/robustness.md.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clirun import message_lines, run_cli, small_text, train_checkpoint

# $BIGRAM_FUZZ_SCALE multiplies every count, for a longer hunt: BIGRAM_FUZZ_SCALE=10 pytest tests/test_fuzz_cli.py -s
_SCALE = max(1, int(os.environ.get("BIGRAM_FUZZ_SCALE", "1") or 1))
EXAMPLES = {k: n * _SCALE for k, n in {"argv": 100, "corpus": 40, "checkpoint_bytes": 30, "checkpoint_json": 40}.items()}
RAN: Counter = Counter()

INTS = ["-1", "0", "1", "2", "3", "7", "abc", "", "1.5", "nan", "-0", "0x10", "99999999999999999999", "-99999999999999999999"]
FLOATS = ["0", "-1", "nan", "inf", "-inf", "1e6", "0.01", "1e-300", "abc", "", "1"]
SMALL = st.sampled_from(INTS) | st.integers(-3, 20).map(str)
OPTIONS = {
    "--steps": SMALL, "--batch-size": SMALL, "--block-size": SMALL, "--eval-interval": SMALL,
    "--eval-batches": SMALL, "--sample": SMALL, "--max-new-tokens": SMALL, "--top-k": SMALL, "--seed": SMALL,
    "--save-interval": SMALL, "--lr": st.sampled_from(FLOATS), "--weight-decay": st.sampled_from(FLOATS),
    "--temperature": st.sampled_from(FLOATS), "--dtype": st.sampled_from(["float32", "float64", "int8", ""]),
    "--prompt": st.text(max_size=6), "--json": st.just(None), "--help": st.just(None),
    "--data": st.sampled_from(["{data}", "{rand}", "{tmp}", "{tmp}/missing.txt", ""]),
    "--out": st.sampled_from(["{tmp}/out", "{data}", "{tmp}/ck"]),
    "--checkpoint": st.sampled_from(["{ck}", "{tmp}/missing", "{data}", "{tmp}"]),
    "--resume": st.sampled_from(["{ck}", "{tmp}/missing", "{data}"]),
    "--bogus": st.just(None),
}
GLOBAL = st.lists(st.sampled_from([["--backend", "numpy"], ["--backend", "torch"], ["--backend", "nope"],
                                   ["--device", "cpu"], ["--device", "cuda"], ["--device", "tpu"], ["--version"],
                                   ["-b", ""]]), max_size=2)
COMMAND = st.sampled_from(["train", "generate", "vocab", "backends", "nope", "--help"])


@st.composite
def argvs(draw):
    argv = [a for pair in draw(GLOBAL) for a in pair]
    command = draw(COMMAND)
    argv.append(command)
    if command == "train":  # a small default run (3000 steps would be slow); the drawn flags can override it
        argv += ["--steps", draw(SMALL), "--out", "{tmp}/out"]
    for flag in draw(st.lists(st.sampled_from(sorted(OPTIONS)), max_size=5)):
        value = draw(OPTIONS[flag])
        argv += [flag] if value is None else [flag, value]
    if draw(st.booleans()):  # stray words
        argv.append(draw(st.text(max_size=4)))
    return argv


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch):
    """fsync buys durability across power loss (tests/test_kill.py); here it would only cost time."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture(scope="module")
def base(tmp_path_factory, shakespeare_path):
    """A small corpus and a good checkpoint, copied into each example's scratch dir."""
    d = tmp_path_factory.mktemp("fuzzbase")
    data = d / "small.txt"
    data.write_text(small_text(shakespeare_path, 2000))
    train_checkpoint(d / "ck", data)
    return d


def _scratch(base: Path) -> Path:
    tmp = Path(tempfile.mkdtemp(dir=base))
    shutil.copy(base / "small.txt", tmp / "small.txt")
    shutil.copytree(base / "ck", tmp / "ck")
    return tmp


def check_clean(argv: list[str]) -> None:
    """Run `bigram ARGV`: exit 0, or exit 2 with a one-line message (or the help typer shows)."""
    code, out, err = run_cli(argv)  # an exception escaping here is the failure we hunt
    assert "Traceback" not in err + out, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        shown_help = err.lstrip().startswith("Usage:")
        assert shown_help or len(message_lines(err)) >= 1 and message_lines(err)[-1].startswith("error:"), (argv, err)
        assert shown_help or err.rstrip("\n").splitlines()[-1].startswith("error:"), (argv, err)


def _fill(argv, tmp: Path) -> list[str]:
    rand = tmp / "rand.txt"
    rand.write_bytes(b"\xff\xfe random \x00 bytes")
    subs = {"{data}": tmp / "small.txt", "{rand}": rand, "{tmp}": tmp, "{ck}": tmp / "ck"}
    for key, value in subs.items():
        argv = [a.replace(key, str(value)) for a in argv]
    return argv


@settings(max_examples=EXAMPLES["argv"], suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(argv=argvs())
def test_fuzz_argv(base, argv):
    tmp = _scratch(base)
    cwd = os.getcwd()
    os.chdir(tmp)  # a relative default (--out out, --checkpoint out) lands in the scratch dir
    try:
        check_clean(_fill(argv, tmp))
        RAN["argv"] += 1
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


@settings(max_examples=EXAMPLES["corpus"], suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
       block=st.integers(1, 6), steps=st.integers(1, 3))
def test_fuzz_corpus_bytes(base, body, block, steps):
    tmp = Path(tempfile.mkdtemp(dir=base))
    try:
        (tmp / "c.txt").write_bytes(body)
        check_clean(["--backend", "numpy", "train", "--data", str(tmp / "c.txt"), "--block-size", str(block),
                     "--batch-size", "2", "--steps", str(steps), "--out", str(tmp / "out"), "--max-new-tokens", "5",
                     "--save-interval", "1"])
        RAN["corpus"] += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _commands(tmp: Path) -> list[list[str]]:
    ck, data = str(tmp / "ck"), str(tmp / "small.txt")
    return [["--backend", "numpy", "generate", "--checkpoint", ck, "--max-new-tokens", "5", "--prompt", "Th"],
            ["vocab", "--checkpoint", ck],
            ["train", "--resume", ck, "--data", data, "--steps", "1", "--max-new-tokens", "3"]]


@settings(max_examples=EXAMPLES["checkpoint_bytes"], suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(["model.safetensors", "optimizer.safetensors", "config.json"]),
       how=st.sampled_from(["random", "truncate", "flip"]), body=st.binary(max_size=400),
       cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_fuzz_checkpoint_bytes(base, name, how, body, cut, flips):
    tmp = _scratch(base)
    try:
        path = tmp / "ck" / name
        raw = bytearray(path.read_bytes())
        if how == "random":
            raw = bytearray(body)
        elif how == "truncate":
            raw = raw[: cut % (len(raw) + 1)]
        else:
            for pos, val in flips:
                raw[pos % len(raw)] = val
        path.write_bytes(bytes(raw))
        for argv in _commands(tmp):
            check_clean(argv)
        RAN["checkpoint_bytes"] += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                    max_leaves=8)


@settings(max_examples=EXAMPLES["checkpoint_json"], suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_checkpoint_config_values(base, data):
    """Each field of a good config.json (and nested ones) replaced by random JSON."""
    tmp = _scratch(base)
    try:
        path = tmp / "ck" / "config.json"
        cfg = json.loads(path.read_text())
        for _ in range(data.draw(st.integers(1, 3))):
            key = data.draw(st.sampled_from(sorted(cfg)))
            if isinstance(cfg[key], dict) and cfg[key] and data.draw(st.booleans()):
                sub = data.draw(st.sampled_from(sorted(cfg[key])))
                cfg[key][sub] = data.draw(JSON)
            else:
                cfg[key] = data.draw(JSON)
        path.write_text(json.dumps(cfg))
        for argv in _commands(tmp):
            check_clean(argv)
        RAN["checkpoint_json"] += 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_zz_report_example_counts():
    """Printed with -s: how many examples each fuzz test ran in this session."""
    print(f"fuzz examples run: {dict(RAN)} (total {sum(RAN.values())})")
