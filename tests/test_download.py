"""Tiny Shakespeare from a local HTTP server: checked, cached under $BIGRAM_CACHE_DIR, reused offline."""

from __future__ import annotations

import os
from pathlib import Path

from clirun import env, run_cli, serve_bytes
from bigram.core.data import TINY_SHAKESPEARE_NAME, TINY_SHAKESPEARE_SHA256, sha256_file


def test_download_is_cached_and_reused(tmp_path, shakespeare_path):
    cache = Path(os.environ["BIGRAM_CACHE_DIR"])
    argv = ["--backend", "numpy", "train", "--steps", 1, "--out", tmp_path / "out", "--max-new-tokens", 0]
    with serve_bytes(Path(shakespeare_path).read_bytes()) as url, env(BIGRAM_DATA_URL=url):
        code, _, err = run_cli(argv)
    assert code == 0, err
    cached = cache / TINY_SHAKESPEARE_NAME
    assert sha256_file(cached) == TINY_SHAKESPEARE_SHA256
    assert [p.name for p in cache.iterdir()] == [TINY_SHAKESPEARE_NAME]  # no temp file left behind
    mtime = cached.stat().st_mtime_ns
    # The server is gone (conftest points $BIGRAM_DATA_URL at a closed port): the cache is enough.
    code, _, err = run_cli(argv)
    assert code == 0, err
    assert cached.stat().st_mtime_ns == mtime
    assert f"corpus {cached}" in err


def test_wrong_bytes_in_cache_are_replaced(tmp_path, shakespeare_path):
    """A cached file that fails its sha256 (a half-written copy by another tool) is downloaded again."""
    cache = Path(os.environ["BIGRAM_CACHE_DIR"])
    cache.mkdir(parents=True)
    (cache / TINY_SHAKESPEARE_NAME).write_text("First Citizen:\n")
    with serve_bytes(Path(shakespeare_path).read_bytes()) as url, env(BIGRAM_DATA_URL=url):
        code, _, err = run_cli(["--backend", "numpy", "train", "--steps", 1, "--out", tmp_path / "o", "--max-new-tokens", 0])
    assert code == 0, err
    assert sha256_file(cache / TINY_SHAKESPEARE_NAME) == TINY_SHAKESPEARE_SHA256
