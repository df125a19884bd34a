"""End to end through the CLI: train, checkpoint, generate on every other backend."""

import json
import subprocess
import sys

import pytest
from backends import BACKENDS, CANDIDATES
from clirun import run_cli

from bigram.core.checkpoint import load_checkpoint


def bigram(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "bigram", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"bigram {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shakespeare_path):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    proc = bigram("--backend", "torch", "train", "--data", str(shakespeare_path), "--steps", "400",
                  "--eval-interval", "200", "--out", str(out), "--json", "--max-new-tokens", "50")
    return out, json.loads(proc.stdout)


def test_train_json_reports_exact_losses_and_writes_a_checkpoint(trained):
    out, result = trained
    assert set(result) == {"backend", "device", "steps", "train_loss", "val_loss", "exact", "eval_batches", "wall_s",
                           "tokens_per_s", "checkpoint"}
    assert result["exact"] is True and result["eval_batches"] is None
    assert result["backend"] == "torch" and result["steps"] == 400
    assert 2.4 < result["train_loss"] < 3.0 and 2.4 < result["val_loss"] < 3.0
    for name in ("model.safetensors", "optimizer.safetensors", "config.json", "metrics.jsonl"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["step"] == 400 and cfg["backend"] == "torch" and cfg["format_version"] == 1
    assert len(cfg["corpus"]["sha256"]) == 64 and cfg["vocab_size"] == 65


def test_checkpoint_loads_into_the_lectures_model(trained):
    import torch
    import torch.nn as nn
    from safetensors.torch import load_file

    class BigramLanguageModel(nn.Module):  # as in the lecture's bigram.py
        def __init__(self, vocab_size):
            super().__init__()
            self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    out, _ = trained
    model = BigramLanguageModel(65)
    model.load_state_dict(load_file(out / "model.safetensors"))  # strict: exactly the one key
    assert torch.equal(model.token_embedding_table.weight.detach(),
                       torch.from_numpy(load_checkpoint(out).weights))


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory, shakespeare_path):
    """A numpy checkpoint and its JSON result: the reference the other backends are held to."""
    out = tmp_path_factory.mktemp("np") / "run"
    code, stdout, err = run_cli(["--backend", "numpy", "train", "--data", shakespeare_path, "--steps", "300",
                                 "--eval-interval", "150", "--out", out, "--json", "--max-new-tokens", "0"])
    assert code == 0, err
    return out, json.loads(stdout)


@pytest.fixture(scope="module")
def numpy_text(numpy_run):
    out, _ = numpy_run
    return bigram("--backend", "numpy", "generate", "--checkpoint", str(out), "--seed", "7",
                  "--max-new-tokens", "300").stdout


@pytest.mark.parametrize("name", BACKENDS)
def test_generate_from_a_numpy_checkpoint_gives_the_same_text_on_every_backend(name, numpy_run, numpy_text):
    out, _ = numpy_run
    text = bigram("--backend", name, "generate", "--checkpoint", str(out), "--seed", "7",
                  "--max-new-tokens", "300").stdout
    assert text == numpy_text
    assert len(text) == 1 + 300 + 1  # the start token '\n', 300 new characters, a final newline


def test_another_seed_gives_another_text(numpy_run, numpy_text):
    other = bigram("--backend", "numpy", "generate", "--checkpoint", str(numpy_run[0]), "--seed", "8",
                   "--max-new-tokens", "300").stdout
    assert other != numpy_text and len(other) == len(numpy_text)


@pytest.mark.parametrize("name", CANDIDATES)
def test_train_json_losses_match_numpy_on_every_backend(name, numpy_run, tmp_path, shakespeare_path):
    """The default run's path (counts, cosine) through the CLI: the same exact losses as numpy's, within 1e-4."""
    code, stdout, err = run_cli(["--backend", name, "--device", "cpu", "train", "--data", shakespeare_path,
                                 "--steps", "300", "--eval-interval", "150", "--out", tmp_path / "run", "--json",
                                 "--max-new-tokens", "0"])
    assert code == 0, err
    got, want = json.loads(stdout), numpy_run[1]
    assert got["backend"] == name and got["device"] == "cpu" and got["steps"] == 300
    assert abs(got["train_loss"] - want["train_loss"]) < 1e-4 and abs(got["val_loss"] - want["val_loss"]) < 1e-4
    assert json.loads((tmp_path / "run" / "config.json").read_text())["backend"] == name


def test_generate_continues_a_prompt(trained):
    out, _ = trained
    text = bigram("--backend", "numpy", "generate", "--checkpoint", str(out), "--prompt", "ROMEO:",
                  "--max-new-tokens", "20", "--top-k", "3", "--temperature", "0.8").stdout
    assert text.startswith("ROMEO:") and len(text) == 6 + 20 + 1


def test_unknown_prompt_character_is_one_line_and_exit_2(trained):
    out, _ = trained
    proc = bigram("generate", "--checkpoint", str(out), "--prompt", "héllo", check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "é" in proc.stderr and "Traceback" not in proc.stderr


def test_numpy_train_and_version_and_backends(tmp_path, shakespeare_path):
    proc = bigram("--backend", "numpy", "train", "--data", str(shakespeare_path), "--steps", "50",
                  "--out", str(tmp_path / "np"), "--max-new-tokens", "0", "--json")
    assert json.loads(proc.stdout)["backend"] == "numpy"
    assert bigram("--version").stdout.startswith("bigram ")
    listed = json.loads(bigram("backends", "--json").stdout)
    assert {"numpy", "torch"} <= {b["name"] for b in listed["backends"]}


def test_train_without_data_uses_the_cache(tmp_path, shakespeare_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tinyshakespeare.txt").write_bytes(shakespeare_path.read_bytes())
    monkeypatch.setenv("BIGRAM_CACHE_DIR", str(cache))
    proc = bigram("--backend", "numpy", "train", "--steps", "10", "--out", str(tmp_path / "o"), "--max-new-tokens", "0",
                  "--json")
    assert json.loads(proc.stdout)["steps"] == 10


def test_offline_without_cache_names_data_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGRAM_CACHE_DIR", str(tmp_path / "empty"))
    proc = bigram("--backend", "numpy", "train", "--steps", "1", "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2
    assert "--data" in proc.stderr and str(tmp_path / "empty") in proc.stderr
    assert not (tmp_path / "o").exists()
