"""Issue #12's cases that are not one-line errors: bounded memory on a huge tampered checkpoint file,
and exact sampling at temperatures so small that logits / T overflows."""

from __future__ import annotations

import json
import shutil
import tracemalloc
import warnings

import numpy as np
import pytest

from clirun import message_lines, run_cli, small_text, train_checkpoint

WEIGHT = "token_embedding_table.weight"
GiB = 1 << 30


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, shakespeare_path):
    d = tmp_path_factory.mktemp("hard")
    data = d / "small.txt"
    data.write_text(small_text(shakespeare_path))
    return train_checkpoint(d / "ck", data, steps=200)


def _header(tensors: dict) -> bytes:
    """A safetensors header (8-byte length, JSON) declaring `tensors`: name -> (dtype, shape, nbytes)."""
    meta, offset = {}, 0
    for name, (dtype, shape, nbytes) in tensors.items():
        meta[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(meta).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def _sparse(path, head: bytes, size: int) -> None:
    """`head`, then zeros up to `size` bytes, with no disk blocks behind the zeros."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)


def huge_tensor(V):  # a valid file: one (28000, 28000) float32 table, 3 GiB, where the vocab makes it (V, V)
    n = 28_000
    head = _header({WEIGHT: ("F32", (n, n), n * n * 4)})
    return head, len(head) + n * n * 4


def right_shape_then_3gib(V):  # the right header, then 3 GiB more than it declares
    head = _header({WEIGHT: ("F32", (V, V), V * V * 4)})
    return head, len(head) + V * V * 4 + 3 * GiB


def extra_tensor(V):  # the right tensor and a 3 GiB one beside it
    head = _header({WEIGHT: ("F32", (V, V), V * V * 4), "padding": ("U8", (3 * GiB,), 3 * GiB)})
    return head, len(head) + V * V * 4 + 3 * GiB


def header_claims_3gib(V):  # a length field that claims a 3 GiB header
    return (3 * GiB).to_bytes(8, "little"), 3 * GiB + 8


@pytest.mark.parametrize("make", [huge_tensor, right_shape_then_3gib, extra_tensor, header_claims_3gib])
@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors"])
def test_a_3gib_sparse_file_is_refused_from_its_header(ckpt, tmp_path, make, name):
    """Refused before its data is read: the peak of Python's allocations stays far below the file's size."""
    ck = tmp_path / "ck"
    shutil.copytree(ckpt, ck)
    V = json.loads((ck / "config.json").read_text())["vocab_size"]
    head, size = make(V)
    _sparse(ck / name, head, size)
    tracemalloc.start()
    try:
        code, _, err = run_cli(["--backend", "numpy", "generate", "--checkpoint", ck, "--max-new-tokens", "5"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 2 and len(message_lines(err)) == 1 and str(ck / name) in err, err
    assert peak < 64 << 20, f"{peak / GiB:.2f} GiB allocated to refuse a 3 GiB file"


@pytest.mark.parametrize("backend", ["numpy", "torch", "example"])
@pytest.mark.parametrize("temperature", ["5e-324", "1e-320", "1e-310"])
def test_a_tiny_temperature_is_the_greedy_limit_without_warnings(ckpt, backend, temperature):
    """logits / T overflowed to inf (NaN after softmax: garbage text and a RuntimeWarning); the limit
    T -> 0 is greedy decoding, which is what a tiny T now gives, on every backend."""
    if backend == "example":
        pytest.importorskip("bigram_example_backend")
    base = ["--backend", backend, "generate", "--checkpoint", ckpt, "--prompt", "Th", "--max-new-tokens", "200"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow, invalid value) fails the test
        code, tiny, err = run_cli([*base, "--temperature", temperature])
    assert code == 0 and err == "", err
    code, greedy, _ = run_cli([*base, "--temperature", "0"])
    assert code == 0 and tiny == greedy
    assert len(set(greedy)) > 3  # a real continuation, not one repeated character


def test_tiny_temperature_probabilities_are_one_hot_on_each_row_max(ckpt):
    from bigram.backends.numpy_backend import NumpyBigram
    from bigram.core.checkpoint import load_checkpoint

    W = load_checkpoint(ckpt).weights  # (V,V), no ties in a trained table
    probs = NumpyBigram(W, dtype="float64").next_token_probs(temperature=5e-324, top_k=3)  # (V,V)
    assert np.array_equal(probs, np.eye(len(W))[W.argmax(axis=1)])
