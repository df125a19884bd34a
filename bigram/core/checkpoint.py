"""Checkpoints: a directory of safetensors and JSON. Never pickle.

    DIR/model.safetensors      token_embedding_table.weight (V,V): the lecture's
                               BigramLanguageModel.load_state_dict accepts it
    DIR/optimizer.safetensors  AdamW exp_avg, exp_avg_sq (V,V) and step
    DIR/config.json            format version, tokenizer, hyperparameters,
                               seed, step, backend, corpus sha256, batcher state
    DIR/metrics.jsonl          one line per evaluation (bigram.core.metrics)

A directory given as --out is a new path, an empty directory or a checkpoint
(it has bigram's config.json); anything else is refused before training. A
save touches only the files above, by name, never through a link, and never
the directory itself or anything else in it:

1. it writes the three files (and, on a run's first save, metrics.jsonl) into
   a fresh `DIR/.bigram-tmp-PID-XXXX/` and fsyncs them;
2. it renames that directory to `DIR/.bigram-save` (the commit point);
3. it links each file over its name in DIR (a rename, so each is replaced
   whole) and fsyncs DIR;
4. it renames `.bigram-save` away and deletes it.

While `.bigram-save` exists, readers take the checkpoint from it (the files in
DIR may be half old, half new); otherwise from DIR. Each file carries the
save's id (config.json's `save_id`, the safetensors' `bigram_save` metadata),
and a reader that finds two ids in one read (a save ran meanwhile) reads again,
so it never mixes two saves. A kill -9 at any moment leaves a complete
checkpoint: the old files before step 2, `.bigram-save` from step 2 to 4, the
new files after step 3; the next writer finishes an interrupted step 3 and
removes `.bigram-tmp-*` leftovers. One writer at a time: a run holds an
exclusive flock on DIR, and a second run into the same DIR is refused.

Checkpoints written before save ids existed (the same layout without ids)
load as they are; so does `.DIR.old`, left beside DIR by older versions when
a save was killed in their non-atomic fallback.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shlex
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bigram import __version__
from bigram.core.backend import STATE_KEYS, WEIGHT_KEY, fresh_state
from bigram.core.errors import BigramError
from bigram.core.metrics import METRICS_FILE, json_safe
from bigram.core.safefs import (
    STAGE, Dir, busy, leftover, link_error, lock, make_tmp_dir, not_regular_error, owned, pread, read_fd,
    remove_tmp_dir, sweep, tmp_name, write_all,
)
from bigram.core.tokenizer import Tokenizer, tokenizer_from_json

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
CONFIG_FILE = "config.json"
SAVE_FILES = (MODEL_FILE, OPTIM_FILE, CONFIG_FILE)
OWN_FILES = (*SAVE_FILES, METRICS_FILE)  # every name a save may replace in DIR
ID_KEY = "save_id"  # config.json
ID_META = "bigram_save"  # safetensors metadata
READ_TRIES = 50  # a reader racing a writer that saves every step settles within a few
HINT = "retrain with `bigram train --out DIR` or point --checkpoint at a complete checkpoint"
MAX_HEADER = 1 << 20  # a safetensors header of the 3 tensors bigram writes is a few hundred bytes
FLOATS = {"F32": 4, "F64": 8}
NUMBERS = {**FLOATS, "I64": 8, "I32": 4, "U64": 8, "U32": 4}  # the step may be saved as an int or a float


@dataclass
class Checkpoint:
    state: dict[str, np.ndarray]  # STATE_KEYS
    tokenizer: Tokenizer
    config: dict = field(default_factory=dict)
    has_optimizer: bool = True  # False: optimizer.safetensors was absent, the moments are zeros

    @property
    def weights(self) -> np.ndarray:
        return self.state[WEIGHT_KEY]

    @property
    def step(self) -> int:
        return int(self.state["adamw.step"])


# -- writing -----------------------------------------------------------------------------------------


def save_checkpoint(out_dir, state: dict[str, np.ndarray], tokenizer: Tokenizer, config: dict, *,
                    metrics: list[dict] | None = None) -> Path:
    """Save a checkpoint into DIR (see the module's docstring); returns DIR.

    `out_dir` is a path, or a CheckpointDir a run keeps open. With `metrics`,
    DIR/metrics.jsonl becomes these records, installed with the save;
    without, it is left as it is.
    """
    if isinstance(out_dir, CheckpointDir):
        return out_dir.save(state, tokenizer, config)
    with CheckpointDir.open(out_dir, continuing=metrics is None) as ck:
        if metrics is not None:
            ck.start_metrics(metrics)
        return ck.save(state, tokenizer, config)


@dataclass
class Contents:
    """What an --out directory holds, as bigram sees it."""

    kind: str  # "new" (no such path), "empty", "checkpoint"
    step: int | None = None  # the checkpoint's step, when its config.json says


def check_out(out: str | Path) -> Contents:
    """Refuse an --out bigram must not write into, before any work: one line naming it."""
    path = Path(out)
    if not path.exists():
        if os.path.lexists(path):
            raise BigramError(f"--out {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
                              "create that directory or choose another --out")
        return Contents("new")
    if not path.is_dir():
        raise BigramError(f"--out {path} exists and is not a directory; choose another --out")
    with Dir.open(path) as d:  # no lock here: every rank of a distributed run checks; rank 0 alone writes
        return _contents(d)


def replacing_warning(out: str | Path, contents: Contents, what: str = "this run") -> str:
    """What a run into a checkpoint it does not continue says before it starts."""
    at = f" (step {contents.step})" if contents.step is not None else ""
    head = f"warning: --out {out} holds a checkpoint{at}: {what} replaces it and its metrics.jsonl"
    if what == "fit":  # a closed-form fit has nothing to continue
        return f"{head}; to keep it, pass another --out"
    return f"{head} at its first save; to continue that run instead, use `bigram train --resume {resume_arg(out)}`"


RESUME_AUTO = "auto"  # `--resume auto`: the keyword, not a directory


def resume_arg(ck_dir: str | Path) -> str:
    """DIR as a shell word for --resume in a printed command: quoted, and a directory named `auto`
    spelled `./auto` (pasted as `--resume auto` it would start or continue the run in --out instead)."""
    word = os.fspath(ck_dir)
    return shlex.quote(f"./{word}" if word == RESUME_AUTO else word)


def _contents(d: Dir) -> Contents:
    names = [n for n in d.names() if not leftover(d, n)]  # a killed save's
    if not names:
        return Contents("empty")
    # a save killed after its commit point: a checkpoint, if the stage holds bigram's config
    if STAGE in names and owned(d, STAGE):
        with d.sub(STAGE) as stage:
            cfg = _bigram_config(stage)
        if cfg is None:
            raise _foreign(d.path, names, f"its {STAGE} holds no bigram {CONFIG_FILE}")
    elif CONFIG_FILE in names:
        cfg = _bigram_config(d)
        if cfg is None:
            raise _foreign(d.path, names, f"its {CONFIG_FILE} is not a bigram checkpoint's")
    else:
        raise _foreign(d.path, names, f"it has no {CONFIG_FILE}")
    if STAGE in names and not owned(d, STAGE):  # a save renames its stage to that name: never over the user's
        st = d.lstat(STAGE)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise link_error(d.path / STAGE)
        raise BigramError(f"--out {d.path} holds a {STAGE} that bigram did not make, and bigram saves through "
                          "that name; move it out of the directory, or choose another --out")
    for name in OWN_FILES:  # bigram replaces these by name: a link or a FIFO there is not its own
        st = d.lstat(name)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise link_error(d.path / name)
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise not_regular_error(d.path / name, st.st_mode)
    step = cfg.get("step") if isinstance(cfg, dict) else None
    return Contents("checkpoint", step if type(step) is int else None)


def _bigram_config(d: Dir) -> dict | None:
    """config.json, if it is one bigram wrote (a JSON object with an integer format_version and a tokenizer)."""
    raw = d.read(CONFIG_FILE)
    try:
        cfg = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None
    ok = isinstance(cfg, dict) and type(cfg.get("format_version")) is int and "tokenizer" in cfg
    return cfg if ok else None


def _foreign(path: Path, names: list[str], why: str) -> BigramError:
    shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
    if path.name in ("", ".."):  # `.`, `..`, "": say which directory that is
        path = Path(f"{path} ({os.path.abspath(path)})")
    return BigramError(
        f"--out {path} is a directory that is not a bigram checkpoint ({why}; it holds {shown}); bigram writes "
        "only into a new or empty directory or a checkpoint of its own: choose another --out"
    )


class CheckpointDir:
    """An --out directory opened once for a run: its fd, its lock, its metrics.

    Every write goes through the fd, so renaming DIR, changing the working
    directory or swapping a link in the path mid-run cannot redirect it.
    """

    def __init__(self, path: Path, d: Dir, contents: Contents, continuing: bool):
        self.path = path
        self.dir = d
        self.contents = contents
        self.continuing = continuing  # this run continues the checkpoint DIR holds (a resume into DIR)
        self.saves = 0
        self._metrics: list[str] | None = None  # lines waiting for the first save
        self._metrics_fd: int | None = None  # metrics.jsonl, once installed: appended as records come

    @classmethod
    def open(cls, out: str | Path, *, continuing: bool = False) -> "CheckpointDir":
        path = Path(out)
        recover(path)
        if check_out(path).kind == "new":
            path.mkdir(parents=True, exist_ok=True)
        d = Dir.open(path)
        try:
            lock(d, busy(path))  # one writer at a time; released when the fd closes or the process dies
            self = cls(path, d, _contents(d), continuing)  # again, under the lock
            self._finish_commit()  # a save killed between its commit point and its end
            self._sweep()
        except BaseException:
            d.close()
            raise
        return self

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __enter__(self) -> "CheckpointDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def replacing(self) -> bool:
        """The run's first save replaces a checkpoint of another run."""
        return self.contents.kind == "checkpoint" and not self.continuing and self.saves == 0

    def close(self) -> None:
        if self._metrics_fd is not None:
            os.close(self._metrics_fd)
            self._metrics_fd = None
        self.dir.close()  # and with it the lock

    # -- metrics.jsonl: installed with the run's first save, appended after it -------------------------
    def start_metrics(self, records: list[dict]) -> None:
        """This run's metrics.jsonl starts with `records` (a resume's, up to its step) and goes into DIR
        with the first save: until then DIR's metrics stay those of the checkpoint it holds."""
        self._metrics = [json.dumps(json_safe(r)) + "\n" for r in records]

    def append_metrics(self, record: dict) -> None:
        line = json.dumps(json_safe(record)) + "\n"
        if self._metrics_fd is not None:
            write_all(self._metrics_fd, line.encode())
        elif self._metrics is not None:
            self._metrics.append(line)

    # -- saves -----------------------------------------------------------------------------------------
    def save(self, state: dict[str, np.ndarray], tokenizer: Tokenizer, config: dict) -> Path:
        for key in STATE_KEYS[:3]:  # a NaN table must never replace a good checkpoint
            if not np.isfinite(state[key]).all():
                raise BigramError(f"refusing to save a checkpoint with non-finite {key} to {self.path}; lower --lr")
        self._finish_commit()  # an earlier save that failed while installing
        files = _encode(state, tokenizer, config, secrets.token_hex(8))
        tmp = make_tmp_dir(self.dir)
        try:
            with self.dir.sub(tmp) as new:
                for name, data in files.items():
                    new.create(name, data)
                if self._metrics is not None and self._metrics_fd is None:
                    self._metrics_fd = new.create(METRICS_FILE, "".join(self._metrics).encode(), keep_open=True)
                new.sync()
            self.dir.rename(tmp, STAGE)  # the commit point
            self.dir.sync()
        except BaseException:
            self._drop_metrics_fd()
            self._remove(tmp)
            raise
        self._metrics = None  # committed: metrics.jsonl is part of this save
        self.saves += 1
        self._finish_commit()
        return self.path

    def _drop_metrics_fd(self) -> None:
        """A failed first save: its metrics.jsonl never reached DIR, so keep the lines for the next one."""
        if self._metrics is not None and self._metrics_fd is not None:
            os.close(self._metrics_fd)
            self._metrics_fd = None

    def _finish_commit(self) -> None:
        """Install .bigram-save's files over their names in DIR, then remove it."""
        if not owned(self.dir, STAGE):  # none, or a user's entry of that name: left as it is
            return
        with self.dir.sub(STAGE) as stage:
            for name in OWN_FILES:
                st = stage.lstat(name)
                if st is not None and stat.S_ISREG(st.st_mode):
                    self.dir.install(stage, name)
        self.dir.sync()
        done = tmp_name()
        self.dir.rename(STAGE, done)
        self.dir.sync()
        self._remove(done)
        self._reopen_metrics()

    def _reopen_metrics(self) -> None:
        """Where links failed, metrics.jsonl was copied: append to the copy in DIR from now on."""
        if self._metrics_fd is None:
            return
        st = self.dir.lstat(METRICS_FILE)
        if st is None or st.st_ino != os.fstat(self._metrics_fd).st_ino:
            os.close(self._metrics_fd)
            self._metrics_fd = self.dir.open_fd(METRICS_FILE, os.O_WRONLY | os.O_APPEND)

    def _sweep(self) -> None:
        """Remove leftovers of saves killed before their commit point (we hold the lock): the .bigram-tmp-*
        directories bigram's marker proves its own; any other entry of such a name is the user's."""
        sweep(self.dir, OWN_FILES)

    def _remove(self, name: str) -> None:
        """Delete a temporary directory this run made (a failed save's, or the stage once installed)."""
        remove_tmp_dir(self.dir, name, OWN_FILES)


def _encode(state: dict[str, np.ndarray], tokenizer: Tokenizer, config: dict, save_id: str) -> dict[str, bytes]:
    """model.safetensors, optimizer.safetensors and config.json of one save, each carrying its id."""
    from safetensors.numpy import save

    meta = {"format": "pt", "bigram_version": __version__, ID_META: save_id}
    W = np.ascontiguousarray(state[WEIGHT_KEY])
    optim = {
        "exp_avg": np.ascontiguousarray(state["adamw.exp_avg"]),
        "exp_avg_sq": np.ascontiguousarray(state["adamw.exp_avg_sq"]),
        "step": np.asarray(state["adamw.step"], dtype=np.int64).reshape(1),
    }
    cfg = dict(config)
    cfg.update(
        format_version=FORMAT_VERSION,
        bigram_version=__version__,
        vocab_size=int(W.shape[0]),
        step=int(state["adamw.step"]),
        tokenizer=tokenizer.to_json(),
    )
    cfg[ID_KEY] = save_id
    return {
        MODEL_FILE: save({WEIGHT_KEY: W}, metadata=meta),
        OPTIM_FILE: save(optim, metadata=meta),
        CONFIG_FILE: (json.dumps(json_safe(cfg), indent=2) + "\n").encode(),
    }


def _old_path(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def recover(out: str | Path) -> None:
    """Older versions' fallback left only .DIR.old when a save was killed mid-swap: put it back."""
    out = Path(out)
    old = _old_path(out)
    if not os.path.lexists(out) and old.is_dir() and not old.is_symlink() and _is_checkpoint(old):
        os.rename(old, out)


def _is_checkpoint(path: Path) -> bool:
    """A directory holding bigram's config.json: only then is .DIR.old ours to move (else it is the user's)."""
    try:
        with Dir.open(path) as d:
            return _bigram_config(d) is not None
    except (OSError, BigramError):
        return False


def resolve_checkpoint_dir(ckpt_dir: str | Path) -> Path:
    """DIR, or .DIR.old when an older version's save was killed in its non-atomic fallback's gap."""
    d = Path(ckpt_dir)
    old = _old_path(d)
    return old if not d.exists() and old.is_dir() and _is_checkpoint(old) else d


# -- reading -----------------------------------------------------------------------------------------


class _Save:
    """The files of one save, opened together (see _open_save)."""

    def __init__(self, where: Path, fds: dict[str, int | None]):
        self.where = where  # the directory they were read from: DIR, or DIR/.bigram-save mid-commit
        self.fds = fds
        self.data: dict[str, bytes] = {}

    def read(self, name: str) -> bytes | None:
        """The whole file (None when the save has no such file)."""
        if name not in self.data:
            fd = self.fds.pop(name, None)
            if fd is None:
                return None
            self.data[name] = read_fd(fd)
        return self.data[name]

    def save_id(self, name: str) -> str | None:
        """The save id a file carries (None: none, or unreadable, as in older checkpoints)."""
        try:
            if name == CONFIG_FILE:
                raw = self.read(name)
                got = json.loads(raw).get(ID_KEY) if raw is not None else None
            else:
                got = _safetensors_meta(self.fds.get(name)).get(ID_META)
        except Exception:  # noqa: BLE001 - a damaged file is reported by the loader, not here
            return None
        return got if isinstance(got, str) else None

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds = {}

    def __enter__(self) -> "_Save":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _safetensors_meta(fd: int | None) -> dict:
    """A safetensors file's __metadata__, from its header alone (8-byte length, then JSON)."""
    if fd is None:
        return {}
    n = int.from_bytes(pread(fd, 8, 0), "little")
    if not 2 <= n <= 1 << 20:
        return {}
    meta = json.loads(pread(fd, n, 8)).get("__metadata__")
    return meta if isinstance(meta, dict) else {}


def _open_save(ckpt_dir: str | Path, names: tuple[str, ...] = SAVE_FILES) -> _Save:
    """Open `names` of the checkpoint in DIR, all from one save; links are refused, never followed."""
    d = resolve_checkpoint_dir(ckpt_dir)
    if not d.is_dir():
        what = "is not a directory" if d.exists() else "does not exist"  # a file, a FIFO: it exists
        raise BigramError(f"checkpoint directory {d} {what}; {HINT}")
    with Dir.open(d) as top:
        for attempt in range(READ_TRIES):
            save = _try_open(top, names)
            if save is not None:
                return save
            time.sleep(min(0.05, 0.001 * attempt))  # a save is being installed: let it finish
    raise BigramError(f"checkpoint {d} holds files of different saves (each carries another save_id); "
                      f"{HINT}")


def _try_open(top: Dir, names: tuple[str, ...]) -> _Save | None:
    """One attempt; None when a save ran meanwhile (try again)."""
    staged = owned(top, STAGE)  # a user's .bigram-save is not a save of bigram's
    try:
        src = top.sub(STAGE) if staged else top
    except FileNotFoundError:
        return None  # the commit ended between the two looks
    try:
        save = _Save(src.path, {n: src.open_read(n) for n in names})
    finally:
        if staged:
            src.close()
    if staged and any(fd is None for fd in save.fds.values()):
        save.close()  # .bigram-save always holds all three: it was being removed
        return None
    ids = {save.save_id(n) for n in names} - {None}
    if len(ids) > 1:
        save.close()
        return None
    return save


def _read_tensors(save: _Save, name: str, expect: dict[str, tuple[tuple, dict]]) -> dict[str, np.ndarray]:
    """The tensors of one of the save's safetensors files, whose header matches `expect`
    (name -> (shape, dtypes)).

    The header is read and checked first, so a file that declares other tensors, other
    shapes, or more data than they need is refused before any of its data is read.
    """
    from safetensors.numpy import load

    path = save.where / name
    fd = save.fds.get(name)
    if fd is None:
        raise BigramError(f"checkpoint file {path} is missing; {HINT}")
    head = _read_header(fd, os.fstat(fd).st_size, path)
    _check_header(head["tensors"], head["data_bytes"], expect, path)
    raw = save.read(name)  # the whole file: its size was just checked against the header
    try:
        return load(raw)
    except Exception as e:  # noqa: BLE001 - safetensors raises several types on bad bytes
        raise BigramError(
            f"checkpoint file {path} is truncated or corrupt ({type(e).__name__}); {HINT}"
        ) from None


def _read_header(fd: int, size: int, path: Path) -> dict:
    """A safetensors header: 8 bytes of length N, then N bytes of JSON naming each tensor."""
    corrupt = f"checkpoint file {path} is truncated or corrupt"
    raw = pread(fd, 8, 0)
    if len(raw) < 8:
        raise BigramError(f"{corrupt} (no safetensors header); {HINT}")
    n = int.from_bytes(raw, "little")
    if n > min(MAX_HEADER, size - 8):
        raise BigramError(f"{corrupt} (its header claims {n} bytes); {HINT}")
    try:
        tensors = json.loads(pread(fd, n, 8).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BigramError(f"{corrupt} (its header is not JSON); {HINT}") from None
    if not isinstance(tensors, dict):
        raise BigramError(f"{corrupt} (its header is not a JSON object); {HINT}")
    tensors.pop("__metadata__", None)
    return {"tensors": tensors, "data_bytes": size - 8 - n}


def _check_header(tensors: dict, data_bytes: int, expect: dict[str, tuple[tuple, dict]], path: Path) -> None:
    """Each expected tensor present with its shape and a dtype from its set; nothing else; no extra data."""
    for name, (shape, dtypes) in expect.items():
        info = tensors.get(name)
        if not isinstance(info, dict):
            raise BigramError(f"{path} has no tensor {name!r}; {HINT}")
        got = info.get("shape")
        if not isinstance(got, list) or not all(type(k) is int and k >= 0 for k in got):
            raise BigramError(f"{path}: tensor {name!r} has no valid shape; {HINT}")
        if shape == (1,) and math.prod(got) != 1:
            raise BigramError(f"{path}: {name} has shape {tuple(got)}, but it must hold one number; {HINT}")
        if shape != (1,) and tuple(got) != shape:
            raise BigramError(f"{path}: {name} has shape {tuple(got)} but the vocab has {shape[0]} characters, "
                              f"so it must be {shape}; {HINT}")
        if not isinstance(info.get("dtype"), str) or info["dtype"] not in dtypes:
            raise BigramError(f"{path}: {name} has dtype {info.get('dtype')}, expected one of "
                              f"{', '.join(dtypes)}; {HINT}")
    extra = sorted(set(tensors) - set(expect))
    if extra:
        raise BigramError(f"{path} holds tensors bigram does not write ({', '.join(map(str, extra[:5]))}); {HINT}")
    need = sum(math.prod(tensors[k]["shape"]) * expect[k][1][tensors[k]["dtype"]] for k in expect)
    if data_bytes != need:
        raise BigramError(f"checkpoint file {path} is truncated or corrupt (it holds {data_bytes} bytes of "
                          f"tensor data, its tensors need {need}); {HINT}")


def _check_finite(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """NaN or infinite weights or moments sample garbage and evaluate to null: refuse them on load."""
    for name, a in arrays.items():
        if not np.isfinite(a).all():
            raise BigramError(f"{path}: {name} holds NaN or infinite values; {HINT}")


def _check_step(path: Path, step: np.ndarray) -> int:
    """AdamW's step: one finite whole number from 0 to 2**53 (the bias correction depends on it)."""
    value = step.ravel()[0]
    if not (np.isfinite(value) and value == np.floor(value) and 0 <= value <= 2**53):
        raise BigramError(f"{path}: step is {value}, not a whole number of steps from 0 to 2**53; {HINT}")
    return int(value)


# The type each config.json field must have where it is present, so that a tampered
# value is refused on load instead of failing deep inside the command that reads it.
_NUMBER = (int, float, type(None))
_CONFIG_TYPES = {
    "format_version": int, "bigram_version": str, "backend": str, "device": str, "dtype": str, "step": int,
    "vocab_size": int, "target_step": int, "seed": int, "evaluated": bool, "tokenizer": dict, "train": dict,
    "corpus": dict, "metrics": dict, "fit": dict, "batcher_state": dict, "eval_batcher_state": (dict, type(None)),
    "world_size": int, "rank_batcher_states": list,
}
_NESTED_TYPES = {
    "corpus": {"sha256": str, "source": str},
    "metrics": {"train_loss": _NUMBER, "val_loss": _NUMBER, "optimum_train_loss": _NUMBER},
}


def _has_type(value, types) -> bool:
    """isinstance, except that a bool is not an int (JSON's true is not a step count)."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
             bool: "true or false", type(None): "null"}
    return " or ".join(names[t] for t in types)


def _check_config_types(cfg: dict, path: Path) -> None:
    for key, types in _CONFIG_TYPES.items():
        if key in cfg and not _has_type(cfg[key], types):
            raise BigramError(f"{path}: {key!r} must be {_type_name(types)}; {HINT}")
    for key, fields in _NESTED_TYPES.items():
        for sub, types in fields.items():
            if key in cfg and sub in cfg[key] and not _has_type(cfg[key][sub], types):
                raise BigramError(f"{path}: '{key}.{sub}' must be {_type_name(types)}; {HINT}")


def load_config(ckpt_dir: str | Path) -> dict:
    with _open_save(ckpt_dir, (CONFIG_FILE,)) as save:
        return _parse_config(save)


def _parse_config(save: _Save) -> dict:
    d, hint = save.where, HINT
    path = d / CONFIG_FILE
    raw = save.read(CONFIG_FILE)
    if raw is None:
        raise BigramError(f"checkpoint {d} has no {CONFIG_FILE}; {hint}")
    try:
        cfg = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, and ints past Python's digit limit
        raise BigramError(f"{path} is not valid JSON ({e}); {hint}") from None
    except RecursionError:
        raise BigramError(f"{path} is not a bigram config (its JSON is nested too deeply); {hint}") from None
    if not isinstance(cfg, dict):
        raise BigramError(f"{path} is not a JSON object; {hint}")
    version = cfg.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BigramError(f"{path} has no integer format_version; {hint}")
    if version > FORMAT_VERSION:
        raise BigramError(
            f"{path} has format version {version}, newer than this bigram ({__version__}) reads "
            f"({FORMAT_VERSION}); upgrade bigram (pip install -U bigram)"
        )
    _check_config_types(cfg, path)
    return cfg


def load_checkpoint(ckpt_dir: str | Path) -> Checkpoint:
    """Read and validate a checkpoint, all of it from one save; any defect is a one-line BigramError."""
    with _open_save(ckpt_dir) as save:
        return _load(save)


def _load(save: _Save) -> Checkpoint:
    d = save.where
    cfg = _parse_config(save)
    tokenizer = config_tokenizer(cfg, d)
    V = tokenizer.vocab_size
    model = _read_tensors(save, MODEL_FILE, {WEIGHT_KEY: ((V, V), FLOATS)})
    _check_finite(d / MODEL_FILE, model)
    state = fresh_state(model[WEIGHT_KEY])  # (V,V) weights; zero moments until the optimizer file says more
    has_optimizer = save.fds.get(OPTIM_FILE) is not None  # absent: a weights-only checkpoint (from a state_dict)
    if has_optimizer:
        state.update(_read_optimizer(save, V, state[WEIGHT_KEY].dtype))
    assert set(state) == set(STATE_KEYS)
    return Checkpoint(state=state, tokenizer=tokenizer, config=cfg, has_optimizer=has_optimizer)


def _read_optimizer(save: _Save, V: int, dtype: np.dtype) -> dict[str, np.ndarray]:
    """AdamW's moments (V,V) in the weights' dtype and its step, each checked."""
    path = save.where / OPTIM_FILE
    opt = _read_tensors(save, OPTIM_FILE, {"exp_avg": ((V, V), FLOATS), "exp_avg_sq": ((V, V), FLOATS),
                                           "step": ((1,), NUMBERS)})
    _check_finite(path, {k: opt[k] for k in ("exp_avg", "exp_avg_sq")})
    if (opt["exp_avg_sq"] < 0).any():  # a mean of squares: sqrt() of a negative one is NaN
        raise BigramError(f"{path}: exp_avg_sq holds negative values; {HINT}")
    return {"adamw.exp_avg": opt["exp_avg"].astype(dtype), "adamw.exp_avg_sq": opt["exp_avg_sq"].astype(dtype),
            "adamw.step": np.array(_check_step(path, opt["step"]), dtype=np.int64)}


def recorded_metric(cfg: dict, key: str) -> float | None:
    """A loss config.json's `metrics` records (train_loss, val_loss, optimum_train_loss); None where absent."""
    m = cfg.get("metrics")
    value = m.get(key) if isinstance(m, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def recorded_token_counts(cfg: dict, V: int) -> np.ndarray | None:
    """(V,) each token's count in the training corpus, as config.json records it; None for older checkpoints."""
    corpus = cfg.get("corpus") if isinstance(cfg.get("corpus"), dict) else {}
    counts = corpus.get("token_counts")
    if not isinstance(counts, list) or len(counts) != V or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) or sum(counts) >= 2**63:
        return None  # (a total past int64 is no corpus's: an edited config)
    return np.array(counts, dtype=np.int64)


def config_tokenizer(cfg: dict, ckpt_dir: str | Path) -> Tokenizer:
    """The tokenizer saved in a checkpoint's config, or a one-line BigramError."""
    hint = HINT
    try:
        return tokenizer_from_json(cfg.get("tokenizer"))
    except (ValueError, TypeError, BigramError) as e:
        raise BigramError(f"{Path(ckpt_dir) / CONFIG_FILE} has an invalid tokenizer ({e}); {hint}") from None
