"""Every bad input the CLI is known to meet: one table, one test, one docs page.

Each case gets a one-line message naming the problem and the fix, the exit
code it lists (2 for errors), and no traceback. `python -m tests.gen_error_docs`
runs the same table and writes docs/errors.md with the exact messages.
"""

from __future__ import annotations

import contextlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from clirun import env, message_lines, run_cli, serve_bytes, small_text, train_checkpoint


class Workspace:
    """A scratch directory with a small corpus ({data}) and, on demand, a trained checkpoint ({ckpt})."""

    def __init__(self, tmp: Path, shakespeare_path: Path, stack: contextlib.ExitStack):
        self.tmp, self.shakespeare_path, self.stack = tmp, shakespeare_path, stack
        self.data = tmp / "small.txt"
        self.data.write_text(small_text(shakespeare_path), encoding="utf-8")
        self.ckpt = tmp / "ckpt"

    def checkpoint(self, *extra: str) -> Path:
        return train_checkpoint(self.ckpt, self.data, *extra)

    def file(self, name: str, content: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(content)
        return path

    def fmt(self, argv: list[str]) -> list[str]:
        return [a.format(tmp=self.tmp, data=self.data, ckpt=self.ckpt) for a in argv]


@dataclass
class Case:
    id: str
    problem: str  # what is wrong, as the docs table says it
    argv: list[str]  # {tmp}, {data}, {ckpt} are filled in
    expect: str  # a piece of the message that must be there
    setup: Callable[[Workspace], None] | None = None
    code: int = 2
    kind: str = "error"  # or "warning": printed, and the command goes on
    requires_no_cuda: bool = False
    after: Callable[[Workspace], None] | None = field(default=None, repr=False)


NP = ["--backend", "numpy"]
TRAIN = [*NP, "train", "--data", "{data}", "--steps", "2", "--out", "{tmp}/out", "--max-new-tokens", "0"]
GEN = [*NP, "generate", "--checkpoint", "{ckpt}", "--max-new-tokens", "5"]
RESUME = [*NP, "train", "--resume", "{ckpt}", "--data", "{data}", "--max-new-tokens", "0"]


def train_with(*opts: str) -> list[str]:
    """TRAIN with some options' values replaced (or added): train_with("--steps", "0")."""
    argv = list(TRAIN)
    for flag, value in zip(opts[::2], opts[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


def ckpt_then(fn: Callable[[Workspace], None] | None = None):
    """Setup: train a checkpoint, then break it with `fn`."""

    def setup(ws: Workspace) -> None:
        ws.checkpoint()
        if fn is not None:
            fn(ws)

    return setup


def truncate_model(ws):
    p = ws.ckpt / "model.safetensors"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


class _Evil:
    def __reduce__(self):  # would create a file if anything unpickled it
        return (Path.touch, (Path("/tmp/bigram-pickle-ran"),))


def pickle_model(ws):
    (ws.ckpt / "model.safetensors").write_bytes(pickle.dumps({"token_embedding_table.weight": _Evil()}))


def edit_config(**changes):
    def fn(ws):
        p = ws.ckpt / "config.json"
        cfg = json.loads(p.read_text())
        cfg.update(changes)
        p.write_text(json.dumps(cfg))

    return fn


def wrong_shape(ws):
    from safetensors.numpy import save

    (ws.ckpt / "model.safetensors").write_bytes(save({"token_embedding_table.weight": np.zeros((3, 3), np.float32)}))


def other_corpus(text: str):
    def setup(ws):
        ws.checkpoint()
        ws.data.write_text(text, encoding="utf-8")

    return setup


def shuffled_same_vocab(ws):
    ws.checkpoint()
    text = ws.data.read_text(encoding="utf-8")
    ws.data.write_text(text[len(text) // 2 :] + text[: len(text) // 2], encoding="utf-8")


def prepared(kind: str):
    """Setup: {tmp}/prepared, the small corpus through `bigram data prepare --tokenizer KIND`."""

    def setup(ws):
        code, _, err = run_cli(["data", "prepare", str(ws.data), "--out", str(ws.tmp / "prepared"), "--tokenizer", kind])
        assert code == 0, err

    return setup


def serve(body: Callable[[Workspace], bytes]):
    """Setup: no cached copy, and $BIGRAM_DATA_URL pointing at a local server that sends `body`."""

    def setup(ws):
        url = ws.stack.enter_context(serve_bytes(body(ws)))
        ws.stack.enter_context(env(BIGRAM_DATA_URL=url, BIGRAM_CACHE_DIR=str(ws.tmp / "cache")))

    return setup


def misbehaving_server(body: bytes, limit_s: str | None = None, **server):
    """Setup: no cached copy, and a local server that misbehaves as clirun.serve_bytes is told to."""

    def setup(ws):
        url = ws.stack.enter_context(serve_bytes(body, **server))
        extra = {} if limit_s is None else {"BIGRAM_DOWNLOAD_TIMEOUT": limit_s}
        ws.stack.enter_context(env(BIGRAM_DATA_URL=url, BIGRAM_CACHE_DIR=str(ws.tmp / "cache"), **extra))

    return setup


def dangling_cache(ws) -> None:
    (ws.tmp / "cachelink").symlink_to(ws.tmp / "gone")
    ws.stack.enter_context(env(BIGRAM_CACHE_DIR=str(ws.tmp / "cachelink")))


def prepare_held(ws) -> None:
    """Setup: {tmp}/p exists, and its lock is held as a running prepare holds it."""
    import fcntl
    import os

    (ws.tmp / "p").mkdir()
    fd = os.open(ws.tmp / "p", os.O_RDONLY)
    ws.stack.callback(os.close, fd)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def download_env(**values: str):
    def setup(ws):
        ws.stack.enter_context(env(BIGRAM_CACHE_DIR=str(ws.tmp / "cache"), **values))

    return setup


def no_network(ws):
    ws.stack.enter_context(env(BIGRAM_DATA_URL="http://127.0.0.1:9/unreachable", BIGRAM_CACHE_DIR=str(ws.tmp / "cache")))


def bad_file_not_kept(ws):
    cache = ws.tmp / "cache"
    assert not cache.exists() or not any(cache.iterdir()), "a download with the wrong sha256 was kept"


def user_dir(ws):
    (ws.tmp / "mine").mkdir()
    (ws.tmp / "mine" / "notes.txt").write_text("mine\n")


def hold_lock(ws):
    """As a running `bigram train --out {ckpt}` does."""
    import fcntl
    import os

    fd = os.open(ws.ckpt, os.O_RDONLY)
    ws.stack.callback(os.close, fd)
    fcntl.flock(fd, fcntl.LOCK_EX)


def link_in_checkpoint(name: str):
    def fn(ws):
        elsewhere = ws.file(f"elsewhere-{name}", (ws.ckpt / name).read_bytes() if (ws.ckpt / name).exists() else b"")
        (ws.ckpt / name).unlink(missing_ok=True)
        (ws.ckpt / name).symlink_to(elsewhere)

    return fn


def fifo_metrics(ws):
    import os

    (ws.ckpt / "metrics.jsonl").unlink()
    os.mkfifo(ws.ckpt / "metrics.jsonl")


def prepared_with_link(ws):
    for d in ("p", "p2"):
        code, _, err = run_cli(["data", "prepare", ws.data, "--out", ws.tmp / d])
        assert code == 0, err
    (ws.tmp / "p" / "vocab.json").unlink()
    (ws.tmp / "p" / "vocab.json").symlink_to(ws.tmp / "p2" / "vocab.json")


DL_TRAIN = [*NP, "train", "--steps", "2", "--out", "{tmp}/out", "--max-new-tokens", "0"]

# ----------------------------------------------------------------------------
# tampered and damaged files (issue #12): each is refused on load with one line

EVAL = [*NP, "eval", "--checkpoint", "{ckpt}", "--data", "{data}"]
PLOT = [*NP, "plot", "--checkpoint", "{ckpt}", "--out", "{tmp}/p.png"]
VOCAB = ["vocab", "--checkpoint", "{ckpt}"]
EXPLAIN = [*NP, "explain", "--checkpoint", "{ckpt}", "--data", "{data}"]
READERS = {"generate": GEN, "eval": EVAL, "resume": RESUME + ["--steps", "1"], "plot": PLOT, "vocab": VOCAB,
           "explain": EXPLAIN}


def tensors(name: str, **changes: np.ndarray):
    """Setup: rewrite one safetensors file of the checkpoint with some tensors replaced (a valid file)."""

    def fn(ws):
        from safetensors.numpy import load, save

        path = ws.ckpt / name
        t = load(path.read_bytes())
        t.update(changes)
        path.write_bytes(save(t))

    return fn


def weight_at_00(value: float):
    def fn(ws):
        from safetensors.numpy import load, save

        path = ws.ckpt / "model.safetensors"
        t = load(path.read_bytes())
        t["token_embedding_table.weight"][0, 0] = value
        path.write_bytes(save(t))

    return fn


def write(name: str, content: bytes):
    return lambda ws: (ws.ckpt / name).write_bytes(content)


def edit_nested(key: str, sub: str, value):
    def fn(ws):
        p = ws.ckpt / "config.json"
        cfg = json.loads(p.read_text())
        cfg[key][sub] = value
        p.write_text(json.dumps(cfg))

    return fn


def surrogate_vocab(ws):
    p = ws.ckpt / "config.json"
    cfg = json.loads(p.read_text())
    cfg["tokenizer"]["chars"] = cfg["tokenizer"]["chars"][:-1] + "\ud800"  # sorted still: above 'z'
    p.write_text(json.dumps(cfg))  # ensure_ascii writes it as \ud800, valid JSON


DEEP = b"[" * 100_000 + b"]" * 100_000
PREP = "{tmp}/prep"


def prepared_then(fn: Callable[[Path], None] | None = None):
    """Setup: `bigram data prepare {data} --out {tmp}/prep`, a checkpoint for eval, then damage it with fn(prep)."""

    def setup(ws):
        from bigram.core.prepare import prepare

        prepare(ws.data, ws.tmp / "prep")
        ws.checkpoint()
        if fn is not None:
            fn(ws.tmp / "prep")

    return setup


def poke_id(prep: Path) -> None:
    """The issue's `printf '\\xfa' | dd of=p/train.bin bs=1 seek=100 conv=notrunc`."""
    with open(prep / "train.bin", "r+b") as f:
        f.seek(100)
        f.write(b"\xfa")


def meta(change: Callable[[dict], None]):
    def fn(prep: Path):
        m = json.loads((prep / "vocab.json").read_text())
        change(m)
        (prep / "vocab.json").write_text(json.dumps(m))

    return fn


def torchrun(**values: str):
    """Setup: a torchrun environment (valid, with `values` replacing some variables)."""
    full = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29513"}
    return lambda ws: ws.stack.enter_context(env(**{**full, **values}))


def fifo(ws):
    import os

    os.mkfifo(ws.tmp / "fifo")


DIST_TRAIN = ["--backend", "torch", "--device", "cpu", "train", "--distributed", "--data", "{data}", "--steps", "1",
              "--out", "{tmp}/out", "--max-new-tokens", "0"]
DIST_FIT = [*NP, "fit", "--distributed", "--data", "{data}", "--out", "{tmp}/fit"]
EXPLAIN_DATA = [*NP, "explain", "--data", "{data}"]
CHECK = ["check", "--backends", "numpy,torch", "--data", "{data}", "--steps", "1"]
STEP_VALUES = {"empty": np.zeros(0, np.int64), "nan": np.array([np.nan]), "inf": np.array([np.inf]),
               "negative": np.array([-5], np.int64)}

TAMPERED = [
    *(Case(f"optimizer-step-{what}-{cmd}", f"optimizer.safetensors' step is {what}", READERS[cmd],
           "not a whole number of steps" if what != "empty" else "must hold one number",
           setup=ckpt_then(tensors("optimizer.safetensors", step=value)))
      for what, value in STEP_VALUES.items() for cmd in ("generate", "eval", "resume")),
    *(Case(f"config-nested-deep-{cmd}", "config.json is JSON nested 100,000 deep", READERS[cmd],
           "nested too deeply", setup=ckpt_then(write("config.json", DEEP)))
      for cmd in ("generate", "vocab", "eval", "plot", "resume", "explain")),
    Case("config-corpus-list", "config.json's `corpus` is a list", EVAL, "'corpus' must be an object",
         setup=ckpt_then(edit_config(corpus=[1, 2]))),
    Case("config-corpus-sha256-int", "config.json's `corpus.sha256` is a number", EVAL,
         "'corpus.sha256' must be a string", setup=ckpt_then(edit_nested("corpus", "sha256", 5))),
    Case("config-metrics-list", "config.json's `metrics` is a list", PLOT, "'metrics' must be an object",
         setup=ckpt_then(edit_config(metrics=[1.0]))),
    *(Case(f"metrics-{what}-{cmd}", f"metrics.jsonl {problem}", READERS[cmd], expect,
           setup=ckpt_then(write("metrics.jsonl", content)))
      for what, problem, content, expect in (
          ("not-utf8", "holds bytes that are not UTF-8", b'{"step": 0}\n\xff\xfe\n', "line 2 is not UTF-8"),
          ("nested-deep", "has a line nested 100,000 deep", DEEP + b"\n", "line 1 is nested too deeply"),
          ("not-object", "has a line that is not an object", b"[1, 2]\n", "line 1 is not a JSON object"))
      for cmd in ("resume", "plot")),
    *(Case(f"vocab-lone-surrogate-{cmd}", "the vocabulary holds a lone surrogate (U+D800)", READERS[cmd],
           "lone surrogate U+D800", setup=ckpt_then(surrogate_vocab)) for cmd in ("plot", "vocab", "generate")),
    *(Case(f"weights-{what}-{cmd}", f"model.safetensors holds {what}", READERS[cmd], "holds NaN or infinite values",
           setup=ckpt_then(weight_at_00(value)))
      for what, value in (("nan", np.nan), ("inf", np.inf)) for cmd in ("generate", "eval")),
    Case("resume-no-optimizer", "`--resume` of a checkpoint without optimizer.safetensors", READERS["resume"],
         "optimizer.safetensors (the AdamW moments and step) is missing",
         setup=ckpt_then(lambda ws: (ws.ckpt / "optimizer.safetensors").unlink())),
    *(Case(f"prepared-id-beyond-vocab-{cmd}", "a prepared train.bin holds an id beyond the vocabulary", argv,
           "beyond the vocabulary's", setup=prepared_then(poke_id))
      for cmd, argv in (("train", train_with("--data", PREP)), ("fit", [*NP, "fit", "--data", PREP, "--out", "{tmp}/f"]),
                        ("eval", [*NP, "eval", "--checkpoint", "{ckpt}", "--data", PREP]))),
    *(Case(f"prepared-{what}", f"a prepared vocab.json {problem}", train_with("--data", PREP), expect,
           setup=prepared_then(meta(change)))
      for what, problem, change, expect in (
          ("dtype-bad", "has a dtype NumPy does not know", lambda m: m.update(dtype="nope"), "has dtype 'nope'"),
          ("dtype-missing", "has no dtype", lambda m: m.pop("dtype"), "has dtype None"),
          ("dtype-float", "has a float dtype", lambda m: m.update(dtype="float32"), "has dtype 'float32'"),
          ("tokenizer-missing", "has no tokenizer", lambda m: m.pop("tokenizer"), "invalid tokenizer"),
          ("sha256-missing", "has no sha256", lambda m: m.pop("sha256"), "has no sha256"),
          ("version-string", "has a string format_version", lambda m: m.update(format_version="1"),
           "no integer format_version"),
          ("chars-unsorted", "has unsorted characters",
           lambda m: m["tokenizer"].update(chars=m["tokenizer"]["chars"][::-1]), "must be sorted"))),
    # the corpus path and the environment
    *(Case(f"data-{what}", f"`--data` is {problem}", train_with("--data", path), "is not a regular file", setup=setup)
      for what, problem, path, setup in (("fifo", "a FIFO (train would hang)", "{tmp}/fifo", fifo),
                                         ("dev-zero", "/dev/zero (endless)", "/dev/zero", None),
                                         ("dev-urandom", "/dev/urandom (endless)", "/dev/urandom", None))),
    *(Case(f"torchrun-{what}", f"torchrun's environment has {problem}", argv, expect, setup=torchrun(**values))
      for what, problem, values, expect in (
          ("master-port-abc", "MASTER_PORT=abc", {"MASTER_PORT": "abc"}, "$MASTER_PORT='abc' is not a whole number"),
          ("master-port-range", "MASTER_PORT=70000", {"MASTER_PORT": "70000"}, "from 1 to 65535"),
          ("rank-beyond-world", "RANK >= WORLD_SIZE (a hang before)", {"RANK": "2", "WORLD_SIZE": "2"},
           "$RANK='2' is not a whole number from 0 to 1"),
          ("rank-negative", "RANK=-1", {"RANK": "-1"}, "$RANK='-1'"),
          ("world-size-zero", "WORLD_SIZE=0", {"WORLD_SIZE": "0"}, "$WORLD_SIZE='0'"),
          ("local-rank-bad", "LOCAL_RANK=gpu0", {"LOCAL_RANK": "gpu0"}, "$LOCAL_RANK='gpu0'"),
          ("master-addr-space", "MASTER_ADDR with a space", {"MASTER_ADDR": "local host"}, "is not a host name"))
      for argv in (DIST_TRAIN,)),
    Case("torchrun-fit-master-port-abc", "`fit --distributed` with MASTER_PORT=abc", DIST_FIT,
         "$MASTER_PORT='abc' is not a whole number", setup=torchrun(MASTER_PORT="abc")),
    # options
    *(Case(f"weight-decay-{what}", f"`--weight-decay` is {what}", train_with("--weight-decay", value),
           "--weight-decay must be a finite number >= 0")
      for what, value in (("nan", "nan"), ("inf", "inf"), ("negative", "-0.1"))),
    Case("explain-batch-size-huge", "`explain --batch-size` beyond any memory",
         [*EXPLAIN_DATA, "--batch-size", str(10**20)], "--batch-size 100000000000000000000 is too large"),
    Case("explain-seed-negative", "`explain --seed` < 0", [*EXPLAIN_DATA, "--seed", "-1"], "--seed must be an integer"),
    Case("check-seed-negative", "`check --seed` < 0", [*CHECK, "--seed", "-1"], "--seed must be an integer"),
    Case("check-lr-nan", "`check --lr` is NaN", [*CHECK, "--lr", "nan"], "--lr must be a positive finite number"),
    Case("check-steps-huge", "`check --steps` beyond what can be drawn up front", [*CHECK[:-1], str(10**12)],
         "use at most 10000"),
]

CASES = [
    # corpus
    Case("corpus-missing", "`--data` names no file", train_with("--data", "{tmp}/nope.txt"), "does not exist"),
    Case("corpus-empty", "`--data` is an empty file", train_with("--data", "{tmp}/empty.txt"), "is empty",
         setup=lambda ws: ws.file("empty.txt", b"")),
    Case("corpus-directory", "`--data` is a directory", train_with("--data", "{tmp}"), "is a directory"),
    Case("corpus-not-utf8", "`--data` is not UTF-8", train_with("--data", "{tmp}/latin1.txt"), "line 2",
         setup=lambda ws: ws.file("latin1.txt", "first line\nna\u00efve caf\u00e9\n".encode("latin-1"))),
    Case("corpus-short-val", "the val split is shorter than block_size + 2",
         train_with("--data", "{tmp}/short.txt", "--block-size", "8"), "the val split has",
         setup=lambda ws: ws.file("short.txt", b"abcdefghijklmnopqrstuvwxyz0123456789")),
    Case("corpus-short-train", "the train split is shorter than block_size + 2",
         train_with("--data", "{tmp}/short.txt", "--block-size", "40"), "the train split has",
         setup=lambda ws: ws.file("short.txt", b"abcdefghijklmnopqrstuvwxyz0123456789")),
    # prompt
    Case("prompt-unknown-chars", "`--prompt` has characters the model never saw",
         [*GEN, "--prompt", "na\u00efve \u20ac"], "bigram vocab --checkpoint DIR", setup=ckpt_then()),
    # numeric options
    Case("steps-zero", "`--steps` <= 0", train_with("--steps", "0"), "--steps must be a positive integer"),
    Case("steps-negative", "`--steps` <= 0", train_with("--steps", "-5"), "--steps must be a positive integer"),
    Case("steps-not-a-number", "`--steps` is not an integer", train_with("--steps", "abc"), "Invalid value for '--steps'"),
    Case("batch-size-zero", "`--batch-size` <= 0", train_with("--batch-size", "0"), "--batch-size must be a positive"),
    Case("block-size-zero", "`--block-size` <= 0", train_with("--block-size", "0"), "--block-size must be a positive"),
    Case("lr-zero", "`--lr` <= 0", train_with("--lr", "0"), "--lr must be a positive finite number"),
    Case("lr-negative", "`--lr` <= 0", train_with("--lr", "-0.1"), "--lr must be a positive finite number"),
    Case("lr-nan", "`--lr` is NaN", train_with("--lr", "nan"), "--lr must be a positive finite number"),
    Case("lr-schedule-unknown", "`--lr-schedule` is not cosine or constant", train_with("--lr-schedule", "linear"),
         "--lr-schedule must be one of cosine, constant"),
    Case("min-lr-above-lr", "`--min-lr` outside 0..`--lr`", train_with("--lr", "0.1", "--min-lr", "0.5"),
         "--min-lr must be a number from 0 to --lr"),
    Case("min-lr-constant", "`--min-lr` with `--lr-schedule constant`",
         train_with("--lr-schedule", "constant", "--min-lr", "0.01"), "--min-lr shapes the cosine schedule"),
    Case("decay-steps-zero", "`--decay-steps` <= 0", train_with("--decay-steps", "0"),
         "--decay-steps must be a positive integer"),
    Case("seed-negative", "`--seed` < 0", train_with("--seed", "-1"), "--seed must be an integer from 0"),
    Case("generate-seed-negative", "`--seed` < 0 when sampling", [*GEN, "--seed", "-1"], "--seed must be an integer",
         setup=ckpt_then()),
    Case("batch-size-huge", "`--batch-size` beyond any memory", train_with("--batch-size", str(10**20)), "is too large"),
    Case("max-new-tokens-huge", "`--max-new-tokens` beyond any memory", [*GEN[:-1], str(10**20)], "cannot sample",
         setup=ckpt_then()),
    Case("save-interval-zero", "`--save-interval` <= 0", train_with("--save-interval", "0"), "--save-interval must be"),
    Case("temperature-negative", "`--temperature` < 0", [*GEN, "--temperature", "-1"], "--temperature must be",
         setup=ckpt_then()),
    Case("top-k-zero", "`--top-k` < 1", [*GEN, "--top-k", "0"], "--top-k must be >= 1", setup=ckpt_then()),
    Case("unknown-option", "an option that does not exist", train_with("--stpes", "3"), "No such option: --stpes"),
    # backend and device
    Case("backend-unknown", "`--backend` names no installed backend",
         ["--backend", "nope", "train", "--data", "{data}", "--steps", "2", "--out", "{tmp}/out"],
         "numpy, torch (choose one with --backend NAME"),
    Case("device-cuda-numpy", "`--device cuda` with the numpy backend",
         ["--device", "cuda", *TRAIN], "the numpy backend runs on cpu only"),
    Case("device-cuda-missing", "`--device cuda` where CUDA is not available",
         ["--backend", "torch", "--device", "cuda", *TRAIN[2:]], "CUDA is not available", requires_no_cuda=True),
    # checkpoint
    Case("checkpoint-missing", "`--checkpoint` names no directory", [*NP, "generate", "--checkpoint", "{tmp}/nope"], "does not exist"),
    Case("checkpoint-truncated", "model.safetensors cut short", GEN, "truncated or corrupt",
         setup=ckpt_then(truncate_model)),
    Case("checkpoint-corrupt", "model.safetensors is random bytes", GEN, "truncated or corrupt",
         setup=ckpt_then(lambda ws: (ws.ckpt / "model.safetensors").write_bytes(bytes(range(256)) * 4))),
    Case("checkpoint-pickle", "model.safetensors is a pickle (never unpickled)", GEN, "truncated or corrupt",
         setup=ckpt_then(pickle_model)),
    Case("config-invalid-json", "config.json is not JSON", GEN, "is not valid JSON",
         setup=ckpt_then(lambda ws: (ws.ckpt / "config.json").write_text("{not json"))),
    Case("config-newer-format", "config.json has a newer format version", GEN, "upgrade bigram",
         setup=ckpt_then(edit_config(format_version=99))),
    Case("checkpoint-wrong-shape", "the table's shape does not match the vocab", GEN, "must be (",
         setup=ckpt_then(wrong_shape)),
    Case("resume-other-vocab", "`--resume` with a corpus of another vocabulary", RESUME + ["--steps", "1"],
         "pass --data with the corpus it was trained on", setup=other_corpus("zzzz yyyy xxxx " * 50)),
    Case("resume-other-text", "`--resume` with another text of the same vocabulary", RESUME + ["--steps", "1"],
         "sha256 differs", setup=shuffled_same_vocab, code=0, kind="warning"),
    Case("resume-changed-lr", "`--resume` with a hyperparameter that differs from the checkpoint's",
         RESUME + ["--lr", "0.5"], "a resumed run keeps its hyperparameters", setup=ckpt_then()),
    Case("resume-finished", "`--resume` of a finished run without `--steps`", RESUME, "pass --steps N",
         setup=ckpt_then()),
    # output and checkpoint directories: bigram's own files, never through a link
    Case("out-not-a-checkpoint", "`--out` is a non-empty directory that is not a checkpoint",
         train_with("--out", "{tmp}/mine"), "is a directory that is not a bigram checkpoint", setup=user_dir),
    Case("out-dangling-link", "`--out` is a link to nowhere", train_with("--out", "{tmp}/gone"),
         "which does not exist", setup=lambda ws: (ws.tmp / "gone").symlink_to(ws.tmp / "nowhere")),
    Case("out-in-use", "`--out` is being written by another run", train_with("--out", "{ckpt}"),
         "is being written by another bigram command", setup=ckpt_then(hold_lock)),
    Case("out-replaces-checkpoint", "a fresh run into a checkpoint (not `--resume`)", train_with("--out", "{ckpt}"),
         "replaces it and its metrics.jsonl", setup=ckpt_then(), code=0, kind="warning"),
    Case("checkpoint-file-link", "a checkpoint file is a symbolic link (never followed)", GEN, "is a symbolic link",
         setup=ckpt_then(link_in_checkpoint("model.safetensors"))),
    Case("metrics-link", "metrics.jsonl is a symbolic link (never read, never appended to)", RESUME + ["--steps", "1"],
         "is a symbolic link", setup=ckpt_then(link_in_checkpoint("metrics.jsonl"))),
    Case("metrics-fifo", "metrics.jsonl is a FIFO", RESUME + ["--steps", "1"], "is a FIFO, not a regular file",
         setup=ckpt_then(fifo_metrics)),
    Case("plot-target-link", "plot.png is a symbolic link (never written through)",
         [*NP, "plot", "--checkpoint", "{ckpt}"], "is a symbolic link",
         setup=ckpt_then(link_in_checkpoint("plot.png"))),
    Case("prepared-file-link", "a prepared directory's file is a symbolic link", train_with("--data", "{tmp}/p"),
         "is a symbolic link", setup=prepared_with_link),
    # one name per meaning, and tokenizers (issue 11)
    Case("max-new-tokens-negative", "`--max-new-tokens` < 0 for train's sample", train_with("--max-new-tokens", "-1"),
         "--max-new-tokens must be >= 0"),
    Case("sample-and-max-new-tokens", "the old `--sample` and `--max-new-tokens` disagree",
         train_with("--max-new-tokens", "7", "--sample", "5"), "give it once, as --max-new-tokens"),
    Case("tokenizer-other-than-prepared", "`--tokenizer` differs from the prepared DIR's",
         [*NP, "fit", "--data", "{tmp}/prepared", "--tokenizer", "char", "--out", "{tmp}/fit"],
         "prepared with the byte tokenizer", setup=prepared("byte")),
    Case("plot-out-directory", "`plot --out` names a directory", [*NP, "plot", "--checkpoint", "{ckpt}", "--out", "{tmp}"],
         "names the image file to write", setup=ckpt_then()),
    # your own splits, next, samples during training (issue 13)
    Case("val-fraction-one", "`--val-fraction` is not in [0, 1)", train_with("--val-fraction", "1"),
         "--val-fraction must be a number from 0"),
    Case("val-data-unknown-chars", "`--val-data` has characters the training data lacks",
         train_with("--val-data", "{tmp}/val.txt"), 'the training data lacks: "é", "€"',
         setup=lambda ws: ws.file("val.txt", "café €\n".encode())),
    Case("val-data-and-fraction", "`--val-data` and a `--val-fraction` above 0 together",
         train_with("--val-data", "{data}", "--val-fraction", "0.2"), "drop --val-fraction"),
    Case("val-fraction-other-than-prepared", "`--val-fraction` differs from the prepared DIR's split",
         train_with("--data", "{tmp}/prepared", "--val-fraction", "0.2"), "its split is fixed",
         setup=prepared("char")),
    Case("resume-other-split", "`--resume` with another `--val-fraction`", RESUME + ["--steps", "1", "--val-fraction", "0.2"],
         "keeps its split", setup=ckpt_then()),
    Case("sample-interval-zero", "`--sample-interval` < 1", train_with("--sample-interval", "0"),
         "--sample-interval must be a positive integer"),
    Case("next-empty-prompt", "`next --prompt` is empty", [*NP, "next", "--checkpoint", "{ckpt}", "--prompt", ""],
         "--prompt is empty", setup=ckpt_then()),
    Case("next-unknown-chars", "`next --prompt` has characters the model never saw",
         [*NP, "next", "--checkpoint", "{ckpt}", "--prompt", "naïve"], 'not in the model\'s vocabulary: "ï"',
         setup=ckpt_then()),
    # download
    Case("download-wrong-sha256", "the downloaded corpus has the wrong sha256", DL_TRAIN, "it was not kept",
         setup=serve(lambda ws: b"not tiny shakespeare\n" * 100), after=bad_file_not_kept),
    Case("download-offline", "no network and no cached corpus", DL_TRAIN, "pass --data FILE", setup=no_network),
    Case("download-short-body", "the server sends fewer bytes than its Content-Length", DL_TRAIN,
         "ended after 1,000 of the 1,115,394 bytes", setup=misbehaving_server(b"x" * 1000, content_length=1_115_394),
         after=bad_file_not_kept),
    Case("download-too-slow", "the server drips bytes past the total time limit (`BIGRAM_DOWNLOAD_TIMEOUT=1`)",
         DL_TRAIN, "took more than 1 s", after=bad_file_not_kept,
         setup=misbehaving_server(b"x" * 1000, "1", content_length=1_115_394, drip_s=0.05, stop_after_s=8)),
    Case("download-too-big", "the server announces more bytes than Tiny Shakespeare has", DL_TRAIN,
         "announces 1,000,000,000,000 bytes", setup=misbehaving_server(b"x" * 1000, content_length=10**12),
         after=bad_file_not_kept),
    Case("download-endless", "the body goes on past Tiny Shakespeare's size (`BIGRAM_DATA_URL=file:///dev/zero`)",
         DL_TRAIN, "went on past Tiny Shakespeare's 1,115,394 bytes", after=bad_file_not_kept,
         setup=download_env(BIGRAM_DATA_URL="file:///dev/zero")),
    Case("download-timeout-invalid", "`$BIGRAM_DOWNLOAD_TIMEOUT` is not a number of seconds > 0", DL_TRAIN,
         "$BIGRAM_DOWNLOAD_TIMEOUT must be", setup=download_env(BIGRAM_DOWNLOAD_TIMEOUT="soon")),
    Case("cache-dir-is-a-file", "`$BIGRAM_CACHE_DIR` names a regular file", DL_TRAIN,
         "is a file, not a directory; point BIGRAM_CACHE_DIR at a writable directory",
         setup=lambda ws: ws.stack.enter_context(env(BIGRAM_CACHE_DIR=str(ws.file("cachefile", b"notes\n"))))),
    Case("cache-dir-dangling-link", "`$BIGRAM_CACHE_DIR` is a symbolic link to nothing", DL_TRAIN,
         "which does not exist; point BIGRAM_CACHE_DIR at a writable directory", setup=dangling_cache),
    Case("out-foreign-stage", "`--out` holds a `.bigram-save` that bigram did not make", train_with("--out", "{ckpt}"),
         ".bigram-save that bigram did not make",
         setup=ckpt_then(lambda ws: (ws.ckpt / ".bigram-save").write_text("mine\n"))),
    Case("prepare-out-busy", "another `data prepare` is writing into `--out`",
         ["data", "prepare", "{data}", "--out", "{tmp}/p"], "is being written by another bigram command", setup=prepare_held),
    *TAMPERED,
]


def run_case(case: Case, tmp: Path, shakespeare_path: Path) -> tuple[int, str, str, Workspace]:
    """Set the case up in `tmp`, run it, check what follows (`after`); return code, stdout, stderr."""
    with contextlib.ExitStack() as stack:
        ws = Workspace(tmp, shakespeare_path, stack)
        if case.setup is not None:
            case.setup(ws)
        code, out, err = run_cli(ws.fmt(case.argv))
        if case.after is not None:
            case.after(ws)
    return code, out, err, ws


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, shakespeare_path):
    if case.requires_no_cuda:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA: the no-CUDA message cannot occur")
    code, _, err, _ = run_case(case, tmp_path, shakespeare_path)
    assert code == case.code, err
    lines = message_lines(err)
    assert len(lines) == 1, err  # one message, on one line
    assert lines[0].startswith(f"{case.kind}:") and case.expect in lines[0], err
    assert "; " in lines[0], "the message must say the problem, then the fix"
    assert "Traceback" not in err
    if case.kind == "error":
        assert err.rstrip("\n").splitlines()[-1] == lines[0]  # the last word is the error
    assert not Path("/tmp/bigram-pickle-ran").exists()


def test_table_covers_every_issue_case():
    """The docs table lists at least the cases issue #6 names."""
    ids = {c.id for c in CASES}
    for required in ["corpus-missing", "corpus-empty", "corpus-directory", "corpus-not-utf8", "corpus-short-val",
                     "corpus-short-train", "prompt-unknown-chars", "steps-zero", "batch-size-zero", "block-size-zero",
                     "lr-zero", "lr-nan", "temperature-negative", "top-k-zero", "backend-unknown",
                     "device-cuda-missing", "checkpoint-missing", "checkpoint-truncated", "checkpoint-corrupt",
                     "config-invalid-json", "config-newer-format", "checkpoint-wrong-shape", "resume-other-vocab",
                     "resume-other-text", "download-wrong-sha256", "download-offline"]:
        assert required in ids


def test_real_process_prints_one_line(tmp_path):
    """Outside the test harness too: a real `bigram` process, exit 2, one line, no traceback."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "bigram", "--backend", "numpy", "train", "--data",
                        str(tmp_path / "nope.txt")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: corpus") and "Traceback" not in r.stderr


def test_docs_page_lists_every_case():
    """docs/errors.md is generated from CASES (python -m tests.gen_error_docs): no case missing."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "errors.md").read_text(encoding="utf-8")
    for case in CASES:
        assert f"| {case.id} |" in doc, f"rerun python -m tests.gen_error_docs: {case.id} is not in docs/errors.md"


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"], ["generate", "--help"]])
def test_help_and_version_still_exit_0(argv):
    """main() runs typer with standalone_mode=False to make usage errors one line; help and version are untouched."""
    code, out, err = run_cli(argv)
    assert code == 0 and err == ""
    assert out.startswith("bigram ") if argv == ["--version"] else "Usage: bigram" in out


def test_no_command_shows_the_help():
    code, out, err = run_cli([])
    assert code == 2 and "Usage: bigram" in out + err and "Commands" in out + err
