"""Checkpoints are data, never code; their paths are reported, never followed."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import sys
from pathlib import Path

from clirun import message_lines, run_cli, small_text, train_checkpoint

PACKAGE = Path(__file__).resolve().parent.parent / "bigram"
# Ways to deserialize code: pickle and its relatives, torch.load, NumPy's pickle opt-in.
UNSAFE = re.compile(
    r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib|cloudpickle|marshal|shelve)\b"
    r"|\bpickle\.loads?\(|\btorch\.load\(|allow_pickle\s*=\s*True|weights_only\s*=\s*False",
    re.MULTILINE,
)


def test_unsafe_pattern_catches_what_it_should():
    for bad in ["import pickle", "from pickle import loads", "x = torch.load(f)", "np.load(p, allow_pickle=True)",
                "torch.load(f, weights_only=False)", "    import dill"]:
        assert UNSAFE.search(bad), bad
    assert not UNSAFE.search('"""Never pickle."""')


def test_package_never_unpickles():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    hits = [f"{f.relative_to(PACKAGE.parent)}: {m.group(0).strip()}" for f in files
            for m in UNSAFE.finditer(f.read_text(encoding="utf-8"))]
    assert hits == []


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # unpickling this would create `marker`
        return (Path.touch, (self.marker,))


def test_pickle_named_model_safetensors_is_rejected_and_never_run(tmp_path, shakespeare_path):
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    ck = train_checkpoint(tmp_path / "ck", data)
    marker = tmp_path / "pickle-ran"
    for name in ("model.safetensors", "optimizer.safetensors"):
        (ck / name).write_bytes(pickle.dumps({"token_embedding_table.weight": _Payload(marker)}))
        for argv in (["--backend", "numpy", "generate", "--checkpoint", ck, "--max-new-tokens", 3],
                     ["--backend", "torch", "generate", "--checkpoint", ck, "--max-new-tokens", 3],
                     ["train", "--resume", ck, "--data", data, "--steps", 1]):
            code, _, err = run_cli(argv)
            assert code == 2 and "truncated or corrupt" in message_lines(err)[-1], err
            assert not marker.exists()
        train_checkpoint(ck, data)  # restore for the next file


# -- paths in config.json are never opened -------------------------------------------------------

_RECORDING: list | None = None


def _audit(event: str, args: tuple) -> None:
    if _RECORDING is not None and any("POISON" in str(a) for a in args):
        _RECORDING.append((event, args))


sys.addaudithook(_audit)  # hooks cannot be removed; it records only while _RECORDING is a list


def test_config_paths_are_never_opened(tmp_path, shakespeare_path):
    """A checkpoint naming files elsewhere (corpus.source, and path-like extras) makes us touch none of them."""
    global _RECORDING
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    ck = train_checkpoint(tmp_path / "ck", data)
    poison = tmp_path / "POISON"
    poison.mkdir()
    (poison / "secret.txt").write_text("secret corpus")
    cfg = json.loads((ck / "config.json").read_text())
    cfg["corpus"]["source"] = str(poison / "secret.txt")
    cfg.update(data=str(poison / "data.txt"), out=str(poison / "out"), out_dir=str(poison / "out2"),
               checkpoint=str(poison / "ck"), metrics_path=str(poison / "metrics.jsonl"), cache_dir=str(poison))
    (ck / "config.json").write_text(json.dumps(cfg))
    runs = [
        ["--backend", "numpy", "generate", "--checkpoint", ck, "--max-new-tokens", 3],
        ["vocab", "--checkpoint", ck],
        ["train", "--resume", ck, "--data", data, "--steps", 2, "--max-new-tokens", 3],
        ["train", "--resume", ck, "--steps", 1, "--save-interval", 1],  # no --data: Tiny Shakespeare, not source
    ]
    cache = Path(os.environ["BIGRAM_CACHE_DIR"])  # the default corpus, cached (conftest isolates the cache)
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shakespeare_path, cache / "tinyshakespeare.txt")
    _RECORDING = []
    (poison / "secret.txt").read_text()  # the hook sees an open of a poisoned path ...
    assert _RECORDING and _RECORDING[0][0] == "open"
    _RECORDING = []  # ... so an empty record below means none happened
    try:
        results = [run_cli(argv) for argv in runs]
    finally:
        touched, _RECORDING = _RECORDING, None
    assert [r[0] for r in results[:3]] == [0, 0, 0], results
    assert results[3][0] == 2 and "pass --data with the corpus it was trained on" in results[3][2]
    assert touched == []
    assert sorted(p.name for p in poison.iterdir()) == ["secret.txt"]
