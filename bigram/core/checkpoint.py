"""Checkpoints: a directory of safetensors and JSON. Never pickle.

    DIR/model.safetensors      token_embedding_table.weight (V,V): the lecture's
                               BigramLanguageModel.load_state_dict accepts it
    DIR/optimizer.safetensors  AdamW exp_avg, exp_avg_sq (V,V) and step
    DIR/config.json            format version, tokenizer, hyperparameters,
                               seed, step, backend, corpus sha256, batcher state

A checkpoint is replaced as a whole, never file by file: the new files are
written and fsynced in a fresh sibling directory (.DIR.tmp-PID-XXXX), which is
then swapped with DIR in one atomic rename (Linux renameat2 RENAME_EXCHANGE).
So at every instant DIR holds a complete checkpoint, old or new, and a kill -9
in the middle of a save leaves the previous one loadable. Where the exchange is
not available, DIR is renamed to .DIR.old before the new one takes its place,
and the loader falls back to .DIR.old during that gap.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bigram import __version__
from bigram.core.backend import STATE_KEYS, WEIGHT_KEY
from bigram.core.data import _fsync_dir
from bigram.core.errors import BigramError
from bigram.core.metrics import json_safe
from bigram.core.tokenizer import Tokenizer, tokenizer_from_json

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optimizer.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class Checkpoint:
    state: dict[str, np.ndarray]  # STATE_KEYS
    tokenizer: Tokenizer
    config: dict = field(default_factory=dict)

    @property
    def weights(self) -> np.ndarray:
        return self.state[WEIGHT_KEY]

    @property
    def step(self) -> int:
        return int(self.state["adamw.step"])


def save_checkpoint(out_dir: str | Path, state: dict[str, np.ndarray], tokenizer: Tokenizer, config: dict) -> Path:
    """Write a checkpoint directory as a whole: built beside DIR, then swapped in."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BigramError(f"--out {out} exists and is not a directory; choose another --out")
    for key in STATE_KEYS[:3]:  # a NaN table must never replace a good checkpoint
        if not np.isfinite(state[key]).all():
            raise BigramError(f"refusing to save a checkpoint with non-finite {key} to {out}; lower --lr")
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    _remove_stale_tmp(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-{os.getpid()}-"))
    try:
        os.chmod(tmp, _dir_mode(out))  # mkdtemp's 0700 would change DIR's permissions
        _write_files(tmp, state, tokenizer, config)
        _carry_over(out, tmp)
        _fsync_dir(tmp)
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after an exchange it holds the old checkpoint
    return out


def _write_files(d: Path, state: dict[str, np.ndarray], tokenizer: Tokenizer, config: dict) -> None:
    """model.safetensors, optimizer.safetensors and config.json, each fsynced."""
    from safetensors.numpy import save

    meta = {"format": "pt", "bigram_version": __version__}
    W = np.ascontiguousarray(state[WEIGHT_KEY])
    _write_synced(d / MODEL_FILE, save({WEIGHT_KEY: W}, metadata=meta))
    optim = {
        "exp_avg": np.ascontiguousarray(state["adamw.exp_avg"]),
        "exp_avg_sq": np.ascontiguousarray(state["adamw.exp_avg_sq"]),
        "step": np.asarray(state["adamw.step"], dtype=np.int64).reshape(1),
    }
    _write_synced(d / OPTIM_FILE, save(optim, metadata=meta))
    cfg = dict(config)
    cfg.update(
        format_version=FORMAT_VERSION,
        bigram_version=__version__,
        vocab_size=int(W.shape[0]),
        step=int(state["adamw.step"]),
        tokenizer=tokenizer.to_json(),
    )
    _write_synced(d / CONFIG_FILE, (json.dumps(json_safe(cfg), indent=2) + "\n").encode())


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _carry_over(out: Path, tmp: Path) -> None:
    """Keep what else lives in DIR (metrics.jsonl, plots): hard links, copies where links fail."""
    if not out.is_dir():
        return
    for src in out.iterdir():
        dst = tmp / src.name
        if src.name in (MODEL_FILE, OPTIM_FILE, CONFIG_FILE) or dst.exists():
            continue
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, dst, symlinks=True)
            continue
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)


def _dir_mode(out: Path) -> int:
    if out.is_dir():
        return out.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _old_path(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def _swap_in(tmp: Path, out: Path) -> None:
    """Make tmp's contents DIR's in one step; tmp is left holding the old ones (or nothing)."""
    if not out.exists():
        os.rename(tmp, out)
    elif not _exchange(tmp, out):  # no atomic exchange here: a short gap covered by .DIR.old
        old = _old_path(out)
        shutil.rmtree(old, ignore_errors=True)
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(out.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    return renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def recover(out: str | Path) -> None:
    """A save killed inside the fallback's gap left only .DIR.old: put it back.

    Call it before writing anything into DIR (a resume's metrics.jsonl, say): a
    DIR holding only that file would hide .DIR.old from the loader, and the next
    save's fallback would delete .DIR.old, the only complete checkpoint.
    """
    out = Path(out)
    old = _old_path(out)
    if not out.exists() and old.is_dir():
        os.rename(old, out)


def _remove_stale_tmp(out: Path) -> None:
    """Delete half-written .DIR.tmp-PID-* directories left by processes that died mid-save."""
    prefix = f".{out.name}.tmp-"
    for p in out.parent.iterdir():
        if not p.name.startswith(prefix):
            continue
        pid = p.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def resolve_checkpoint_dir(ckpt_dir: str | Path) -> Path:
    """DIR, or .DIR.old when a save was killed in the non-atomic fallback's gap."""
    d = Path(ckpt_dir)
    old = _old_path(d)
    return old if not d.exists() and old.is_dir() else d


def _read_tensors(path: Path, hint: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    if not path.is_file():
        raise BigramError(f"checkpoint file {path} is missing; {hint}")
    try:
        return load(path.read_bytes())
    except Exception as e:  # noqa: BLE001 - safetensors raises several types on bad bytes
        raise BigramError(
            f"checkpoint file {path} is truncated or corrupt ({type(e).__name__}); {hint}"
        ) from None


def load_config(ckpt_dir: str | Path) -> dict:
    d = resolve_checkpoint_dir(ckpt_dir)
    hint = "retrain with `bigram train --out DIR` or point --checkpoint at a complete checkpoint"
    if not d.is_dir():
        raise BigramError(f"checkpoint directory {d} does not exist; {hint}")
    path = d / CONFIG_FILE
    if not path.is_file():
        raise BigramError(f"checkpoint {d} has no {CONFIG_FILE}; {hint}")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BigramError(f"{path} is not valid JSON ({e}); {hint}") from None
    if not isinstance(cfg, dict):
        raise BigramError(f"{path} is not a JSON object; {hint}")
    version = cfg.get("format_version")
    if not isinstance(version, int):
        raise BigramError(f"{path} has no integer format_version; {hint}")
    if version > FORMAT_VERSION:
        raise BigramError(
            f"{path} has format version {version}, newer than this bigram ({__version__}) reads "
            f"({FORMAT_VERSION}); upgrade bigram (pip install -U bigram)"
        )
    return cfg


def load_checkpoint(ckpt_dir: str | Path) -> Checkpoint:
    """Read and validate a checkpoint; any defect is a one-line BigramError."""
    d = resolve_checkpoint_dir(ckpt_dir)
    cfg = load_config(d)
    hint = "retrain with `bigram train --out DIR` or point --checkpoint at a complete checkpoint"
    tokenizer = config_tokenizer(cfg, d)
    V = tokenizer.vocab_size
    model = _read_tensors(d / MODEL_FILE, hint)
    W = model.get(WEIGHT_KEY)
    if W is None:
        raise BigramError(f"{d / MODEL_FILE} has no tensor {WEIGHT_KEY!r}; {hint}")
    if W.shape != (V, V):
        raise BigramError(
            f"{d / MODEL_FILE}: {WEIGHT_KEY} has shape {tuple(W.shape)} but the vocab has {V} "
            f"characters, so it must be ({V}, {V}); {hint}"
        )
    if W.dtype not in (np.float32, np.float64):
        raise BigramError(f"{d / MODEL_FILE}: {WEIGHT_KEY} has dtype {W.dtype}, expected float32 or float64; {hint}")
    state = {WEIGHT_KEY: W}
    if (d / OPTIM_FILE).exists():
        opt = _read_tensors(d / OPTIM_FILE, hint)
        for key in ("exp_avg", "exp_avg_sq"):
            if key not in opt or opt[key].shape != (V, V):
                raise BigramError(f"{d / OPTIM_FILE}: {key} is missing or not ({V}, {V}); {hint}")
            state[f"adamw.{key}"] = opt[key].astype(W.dtype)
        state["adamw.step"] = np.array(int(np.asarray(opt.get("step", [0])).ravel()[0]), dtype=np.int64)
    else:  # a weights-only checkpoint (e.g. written by hand from a state_dict)
        state.update(
            {"adamw.exp_avg": np.zeros_like(W), "adamw.exp_avg_sq": np.zeros_like(W), "adamw.step": np.array(0)}
        )
    assert set(state) == set(STATE_KEYS)
    return Checkpoint(state=state, tokenizer=tokenizer, config=cfg)


def config_tokenizer(cfg: dict, ckpt_dir: str | Path) -> Tokenizer:
    """The tokenizer saved in a checkpoint's config, or a one-line BigramError."""
    hint = "retrain with `bigram train --out DIR` or point --checkpoint at a complete checkpoint"
    try:
        return tokenizer_from_json(cfg.get("tokenizer"))
    except (ValueError, TypeError, BigramError) as e:
        raise BigramError(f"{Path(ckpt_dir) / CONFIG_FILE} has an invalid tokenizer ({e}); {hint}") from None
