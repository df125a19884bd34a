"""CLI fuzzing: random argument vectors, random corpora, and every file of a checkpoint and of a
prepared directory damaged (random bytes, or structure-aware: valid JSON with wrong types, valid
safetensors with wrong shapes, dtypes or values) against every command that reads it.

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

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clirun import message_lines, run_cli, small_text, train_checkpoint

# $BIGRAM_FUZZ_SCALE multiplies every count, for a longer hunt: BIGRAM_FUZZ_SCALE=10 pytest tests/test_fuzz_cli.py -s
_SCALE = max(1, int(os.environ.get("BIGRAM_FUZZ_SCALE", "1") or 1))
EXAMPLES = {k: n * _SCALE for k, n in {"argv": 100, "corpus": 40, "file": 8}.items()}  # "file": per file x command

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
    "--smoothing": st.sampled_from(FLOATS), "--split": st.sampled_from(["train", "val", "both", "test", ""]),
    "--distributed": st.just(None), "--tokenizer": st.sampled_from(["char", "byte", "word", ""]),
    "--bogus": st.just(None),
}
GLOBAL = st.lists(st.sampled_from([["--backend", "numpy"], ["--backend", "torch"], ["--backend", "nope"],
                                   ["--device", "cpu"], ["--device", "cuda"], ["--device", "tpu"], ["--version"],
                                   ["-b", ""]]), max_size=2)
COMMAND = st.sampled_from(["train", "generate", "vocab", "backends", "eval", "explain", "fit", "nope", "--help"])


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


def check_clean(argv: list[str]) -> int:
    """Run `bigram ARGV`: exit 0, or exit 2 with a one-line message (or the help typer shows); the exit code."""
    code, out, err = run_cli(argv)  # an exception escaping here is the failure we hunt
    assert "Traceback" not in err + out, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        shown_help = err.lstrip().startswith("Usage:")
        assert shown_help or len(message_lines(err)) >= 1 and message_lines(err)[-1].startswith("error:"), (argv, err)
        assert shown_help or err.rstrip("\n").splitlines()[-1].startswith("error:"), (argv, err)
    return code


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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------
# every file of a checkpoint and of a prepared directory, against every command that reads it

CKPT, PREP = "ck", "prep"
CKPT_FILES = {"model.safetensors": ["generate", "eval", "plot", "explain", "resume"],
              "optimizer.safetensors": ["generate", "eval", "plot", "explain", "resume"],
              "config.json": ["generate", "vocab", "eval", "plot", "explain", "resume"],
              "metrics.jsonl": ["plot", "resume"]}
PREP_FILES = {name: ["train", "eval", "fit", "explain", "check", "plot", "resume"]
              for name in ("train.bin", "val.bin", "vocab.json")}
PAIRS = [(CKPT, f, c) for f, cs in CKPT_FILES.items() for c in cs] + [(PREP, f, c) for f, cs in PREP_FILES.items() for c in cs]


def _argv(command: str, tmp: Path, data: Path) -> list[str]:
    """The command reading tmp/ck (and `data`: small.txt, or the prepared directory under test)."""
    ck, np_ = str(tmp / CKPT), ["--backend", "numpy"]
    return {
        "generate": [*np_, "generate", "--checkpoint", ck, "--max-new-tokens", "5", "--prompt", "Th"],
        "vocab": ["vocab", "--checkpoint", ck],
        "eval": [*np_, "eval", "--checkpoint", ck, "--data", data],
        "plot": [*np_, "plot", "--checkpoint", ck, "--out", tmp / "p.png"] + (["--data", data] if data.is_dir() else []),
        "explain": [*np_, "explain", "--checkpoint", ck, "--data", data, "--block-size", "4"],
        "resume": [*np_, "train", "--resume", ck, "--data", data, "--steps", "1", "--max-new-tokens", "3"],
        "train": [*np_, "train", "--data", data, "--steps", "2", "--block-size", "4", "--out", tmp / "o",
                  "--max-new-tokens", "3"],
        "fit": [*np_, "fit", "--data", data, "--out", tmp / "f"],
        "check": ["check", "--backends", "numpy,torch", "--data", data, "--steps", "1", "--block-size", "4"],
    }[command]


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                    max_leaves=8)


class Raw(str):
    """JSON text written as it is (json.dumps cannot write an integer of 5000 digits)."""


ODD = st.sampled_from([None, True, False, 0, -1, 1, 2**31, 2**63, 2**64, -(2**63), 10**400, 1e308, -1e-308,
                       float("nan"), float("inf"), float("-inf"), "", "\ud800", "\x00", "x" * 300, [], {}, [1, 2],
                       {"kind": "char", "chars": "ba"}, {"kind": "char", "chars": "aab"}, {"kind": "byte"},
                       {"kind": "char", "chars": "\ud800"}, "uint8", "uint16", "float32", "int8", "nope",
                       Raw("1" + "0" * 5000), Raw("[" * 100_000 + "]" * 100_000), Raw("1e999")])
# Values of the wrong type, size or range for any JSON field.
VALUES = ODD | JSON | st.text(alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=3)


def _dump(obj) -> bytes:
    """json.dumps, with each Raw value spliced in as text."""
    raws: list[str] = []

    def mark(o):
        if isinstance(o, Raw):
            raws.append(o)
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(o, dict):
            return {k: mark(v) for k, v in o.items()}
        if isinstance(o, list):
            return [mark(v) for v in o]
        return o

    text = json.dumps(mark(obj))
    for i, r in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', r)
    return text.encode("utf-8", "surrogatepass")


def _json_path(obj, data) -> list:
    """A path to a field: keys (or indices) down from the top, at least one deep."""
    path = []
    while isinstance(obj, (dict, list)) and obj:
        key = data.draw(st.sampled_from(sorted(obj) if isinstance(obj, dict) else range(len(obj))))
        path.append(key)
        obj = obj[key]
        if not data.draw(st.booleans()):
            break
    return path


def mutate_json(raw: bytes, data) -> bytes:
    """Valid JSON with a field changed, deleted or buried deep; or not an object; or damaged bytes."""
    how = data.draw(st.sampled_from(["field", "field", "delete", "nest", "top", "bytes"]))
    if how == "bytes":
        return mutate_bytes(raw, data)
    obj = json.loads(raw)
    if how == "top":
        return _dump(data.draw(VALUES))
    path = _json_path(obj, data)
    if not path:
        return _dump(data.draw(VALUES))
    *parents, last = path
    holder = obj
    for k in parents:
        holder = holder[k]
    if how == "field":
        holder[last] = data.draw(VALUES)
    elif how == "delete":
        del holder[last]
    else:
        depth = data.draw(st.sampled_from([1, 3, 50, 2000, 100_000]))
        holder[last] = Raw("[" * depth + _dump(holder[last]).decode("utf-8", "surrogatepass") + "]" * depth)
    return _dump(obj)


def mutate_bytes(raw: bytes, data) -> bytes:
    """Random bytes, the file cut short, a few bytes changed, or nothing at all."""
    how = data.draw(st.sampled_from(["random", "truncate", "flip", "empty"]))
    if how == "random":
        return data.draw(st.binary(max_size=400))
    if how == "truncate":
        return raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))]
    if how == "empty" or not raw:
        return b""
    out = bytearray(raw)
    for pos, val in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), min_size=1,
                                       max_size=4)):
        out[pos] = val
    return bytes(out)


SHAPES = ["scalar", "empty", "one", "row", "square", "tall", "wide", "cube", "two"]
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_, np.complex64]
FILLS = ["normal", "zeros", "nan", "inf", "-inf", "negative", "huge"]


def _tensor(data, V: int) -> np.ndarray:
    shape = {"scalar": (), "empty": (0,), "one": (1,), "row": (V,), "square": (V, V), "tall": (V + 1, V),
             "wide": (V, V + 1), "cube": (1, V, V), "two": (2,)}[data.draw(st.sampled_from(SHAPES))]
    dtype = data.draw(st.sampled_from(DTYPES))
    fill = data.draw(st.sampled_from(FILLS))
    base = {"normal": 0.5, "zeros": 0.0, "nan": np.nan, "inf": np.inf, "-inf": -np.inf, "negative": -3.0,
            "huge": 3e38}[fill]
    with np.errstate(invalid="ignore", over="ignore"):
        return np.full(shape, base).astype(dtype)


def mutate_tensors(raw: bytes, data, V: int) -> bytes:
    """A valid safetensors file with a tensor of another shape, dtype or values, one dropped or added,
    its header edited (shapes, dtypes, offsets that lie), or damaged bytes."""
    from safetensors.numpy import load, save

    how = data.draw(st.sampled_from(["replace", "values", "drop", "add", "header", "bytes"]))
    if how == "bytes":
        return mutate_bytes(raw, data)
    if how == "header":
        return _mutate_header(raw, data, V)
    t = dict(load(raw))
    name = data.draw(st.sampled_from(sorted(t)))
    if how == "replace":
        t[name] = _tensor(data, V)
    elif how == "values":
        a = t[name].astype(np.float64).copy()
        for _ in range(data.draw(st.integers(1, 3))):
            a.reshape(-1)[data.draw(st.integers(0, a.size - 1))] = data.draw(
                st.sampled_from([np.nan, np.inf, -np.inf, -1.0, -1e30, 1e30, 0.5, 2.0**60]))
        with np.errstate(invalid="ignore", over="ignore"):
            t[name] = a.astype(t[name].dtype) if np.issubdtype(t[name].dtype, np.floating) else a
    elif how == "drop":
        del t[name]
    else:
        t[data.draw(st.sampled_from(["extra", "exp_avg", "step", "token_embedding_table.weight"]))] = _tensor(data, V)
    return save(t)


def _mutate_header(raw: bytes, data, V: int) -> bytes:
    n = int.from_bytes(raw[:8], "little")
    head, body = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    name = data.draw(st.sampled_from(sorted(k for k in head if k != "__metadata__")))
    field = data.draw(st.sampled_from(["shape", "dtype", "data_offsets", "length"]))
    if field == "length":  # the length prefix itself lies
        fake = data.draw(st.sampled_from([0, 1, n - 1, n + 1, 2**40, 2**64 - 1]))
        return fake.to_bytes(8, "little") + raw[8:]
    head[name][field] = data.draw(st.sampled_from({
        "shape": [[V, V + 1], [V * V], [], [0], [-1, V], [V, V, 1], ["V", V], None],
        "dtype": ["F16", "I64", "BOOL", "F64", "C64", "X9", None, 3],
        "data_offsets": [[0, 0], [0, 2**40], [5, 3], [-1, 10], None, [0]],
    }[field]))
    text = json.dumps(head).encode()
    return len(text).to_bytes(8, "little") + text + body


def mutate_metrics(raw: bytes, data) -> bytes:
    """Lines of valid records, records with odd fields, other JSON, raw bytes, deep nesting, a cut line."""
    record = st.fixed_dictionaries({"step": st.integers(0, 10) | VALUES}, optional={
        k: VALUES for k in ("train_loss", "val_loss", "batch_loss", "wall_s", "x")})
    line = st.one_of(
        st.builds(lambda s, l: _dump({"step": s, "train_loss": l, "val_loss": l}),
                  st.integers(0, 10), st.floats(0, 10)),
        record.map(_dump), VALUES.map(_dump), st.binary(max_size=20).filter(lambda b: b"\n" not in b),
        st.just(b"[" * 100_000 + b"]" * 100_000), st.just(b'{"step": 4, "train_lo'))
    lines = data.draw(st.lists(line, min_size=1, max_size=5))
    if data.draw(st.booleans()):
        return mutate_bytes(raw, data)
    return b"\n".join(lines) + data.draw(st.sampled_from([b"\n", b""]))


def mutate_tokens(raw: bytes, data) -> bytes:
    """Ids beyond the vocabulary at a few places, the same length of random bytes, or another length."""
    how = data.draw(st.sampled_from(["poke", "random", "resize", "bytes"]))
    if how == "bytes" or not raw:
        return mutate_bytes(raw, data)
    if how == "random":
        return data.draw(st.binary(min_size=len(raw), max_size=len(raw)))
    if how == "resize":
        return raw[: -data.draw(st.integers(1, len(raw)))] if data.draw(st.booleans()) else raw + b"\x00"
    out = bytearray(raw)
    for pos, val in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), min_size=1,
                                       max_size=3)):
        out[pos] = val
    return bytes(out)


def mutate(path: Path, data, V: int) -> None:
    raw = path.read_bytes()
    if path.suffix == ".json":
        out = mutate_json(raw, data)
    elif path.suffix == ".safetensors":
        out = mutate_tensors(raw, data, V)
    elif path.suffix == ".jsonl":
        out = mutate_metrics(raw, data)
    else:
        out = mutate_tokens(raw, data)
    path.write_bytes(out)


@pytest.fixture(scope="module")
def prepared_base(base):
    from bigram.core.prepare import prepare

    prepare(base / "small.txt", base / PREP)
    return base


@pytest.fixture(scope="module")
def fast_plots():
    """`plot` builds every artist from what it read (curves, tick labels, the table) but skips the layout and
    the rasterizing, a few seconds each; tests/test_plot.py draws real PNGs."""
    from matplotlib.figure import Figure

    saved = Figure.savefig, Figure.tight_layout
    Figure.savefig = lambda self, fname, *a, **kw: None  # plot then writes an empty file
    Figure.tight_layout = lambda self, *a, **kw: None
    yield
    Figure.savefig, Figure.tight_layout = saved


@pytest.fixture(scope="module")
def report():
    """Printed with -s at the end: examples per file x command, and how many the command refused."""
    counts: dict = {}
    yield counts
    total = sum(sum(c.values()) for c in counts.values())
    for (where, name, command), c in counts.items():
        print(f"fuzz {where}/{name} x {command}: {sum(c.values())} examples, {c[0]} ran, {c[2]} refused")
    print(f"fuzz files x commands: {len(counts)} pairs, {total} examples")


@pytest.mark.parametrize("where,name,command", PAIRS, ids=[f"{f}-{c}" for _, f, c in PAIRS])
def test_fuzz_file_against_command(prepared_base, fast_plots, report, where, name, command):
    """One file of a checkpoint or a prepared directory, damaged, then read by one command:
    exit 0 or a clean one-line error, never a traceback."""
    V = json.loads((prepared_base / CKPT / "config.json").read_text())["vocab_size"]
    outcomes = report.setdefault((where, name, command), Counter())

    @settings(max_examples=EXAMPLES["file"], suppress_health_check=list(HealthCheck), deadline=None)
    @given(data=st.data())
    @example(data=None)  # the file replaced by bytes no reader accepts: one refusal for sure
    def one(data):
        tmp = _scratch(prepared_base)
        try:
            shutil.copytree(prepared_base / PREP, tmp / PREP)
            path = tmp / where / name
            if data is None:
                path.write_bytes(b"\xff\x00 not a bigram file")
            else:
                mutate(path, data, V)
            code = check_clean(_argv(command, tmp, tmp / PREP if where == PREP else tmp / "small.txt"))
            outcomes[code] += 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    one()
    assert sum(outcomes.values()) >= EXAMPLES["file"]  # hypothesis ran every example through the command
    assert outcomes[2] >= 1  # and the command really read the file: the unreadable one was refused
