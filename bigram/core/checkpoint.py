"""Checkpoints: a directory of safetensors and JSON. Never pickle.

    DIR/model.safetensors      token_embedding_table.weight (V,V): the lecture's
                               BigramLanguageModel.load_state_dict accepts it
    DIR/optimizer.safetensors  AdamW exp_avg, exp_avg_sq (V,V) and step
    DIR/config.json            format version, tokenizer, hyperparameters,
                               seed, step, backend, corpus sha256, batcher state

Each file is written to a temp file, fsynced and renamed into place; config.json
goes last, so a reader never sees a config that names a step whose tensors are
missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bigram import __version__
from bigram.core.backend import STATE_KEYS, WEIGHT_KEY
from bigram.core.data import atomic_write_bytes
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
    """Write a checkpoint directory atomically, file by file, config last."""
    from safetensors.numpy import save

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BigramError(f"--out {out} exists and is not a directory; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "bigram_version": __version__}
    W = np.ascontiguousarray(state[WEIGHT_KEY])
    atomic_write_bytes(out / MODEL_FILE, save({WEIGHT_KEY: W}, metadata=meta))
    optim = {
        "exp_avg": np.ascontiguousarray(state["adamw.exp_avg"]),
        "exp_avg_sq": np.ascontiguousarray(state["adamw.exp_avg_sq"]),
        "step": np.asarray(state["adamw.step"], dtype=np.int64).reshape(1),
    }
    atomic_write_bytes(out / OPTIM_FILE, save(optim, metadata=meta))
    cfg = dict(config)
    cfg.update(
        format_version=FORMAT_VERSION,
        bigram_version=__version__,
        vocab_size=int(W.shape[0]),
        step=int(state["adamw.step"]),
        tokenizer=tokenizer.to_json(),
    )
    atomic_write_bytes(out / CONFIG_FILE, (json.dumps(json_safe(cfg), indent=2) + "\n").encode())
    return out


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
    d = Path(ckpt_dir)
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
    d = Path(ckpt_dir)
    cfg = load_config(d)
    hint = "retrain with `bigram train --out DIR` or point --checkpoint at a complete checkpoint"
    try:
        tokenizer = tokenizer_from_json(cfg.get("tokenizer"))
    except (ValueError, TypeError, BigramError) as e:
        raise BigramError(f"{d / CONFIG_FILE} has an invalid tokenizer ({e}); {hint}") from None
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
