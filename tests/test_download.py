"""Tiny Shakespeare from a local HTTP server: checked, cached under $BIGRAM_CACHE_DIR, reused offline.

Servers that misbehave (a short body, a drip, an endless body) meet the
download's limits: a one-line error, exit 2, nothing cached, within seconds.
"""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import pytest

from bigram.core.download import (
    TINY_SHAKESPEARE_BYTES, TINY_SHAKESPEARE_NAME, TINY_SHAKESPEARE_SHA256, download_tiny_shakespeare, sha256_file,
)
from clirun import env, message_lines, run_cli, serve_bytes

TRAIN = ["--backend", "numpy", "train", "--steps", 1, "--max-new-tokens", 0]


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


def _fails_cleanly(tmp_path, fragment: str, **limits) -> str:
    """Train with no --data against the server already set up; one error line with `fragment`, nothing cached."""
    with env(**limits):
        code, out, err = run_cli([*TRAIN, "--out", tmp_path / "o"])
    assert code == 2, err
    assert "Traceback" not in err
    [line] = message_lines(err)
    assert fragment in line, line
    assert "--data FILE" in line  # the way out, offline
    cache = Path(os.environ["BIGRAM_CACHE_DIR"])
    assert not cache.exists() or not any(cache.iterdir()), "a failed download left a file behind"
    assert not (tmp_path / "o").exists()
    return err


def test_short_body_is_an_error_not_a_traceback(tmp_path, shakespeare_path):
    body = Path(shakespeare_path).read_bytes()
    with serve_bytes(body[:1000], content_length=len(body)) as url, env(BIGRAM_DATA_URL=url):
        _fails_cleanly(tmp_path, f"ended after 1,000 of the {len(body):,} bytes the server announced")


@pytest.mark.parametrize("drip_s", [0.02, 2.0])
def test_a_dripping_server_meets_the_total_time_limit(tmp_path, drip_s):
    """A byte every 2 s never trips a per-read timeout; the total limit stops it (here set to 1 s)."""
    with serve_bytes(b"x" * 1000, content_length=TINY_SHAKESPEARE_BYTES, drip_s=drip_s, stop_after_s=8) as url, \
            env(BIGRAM_DATA_URL=url):
        start = time.monotonic()
        _fails_cleanly(tmp_path, "took more than 1 s", BIGRAM_DOWNLOAD_TIMEOUT="1")
        assert time.monotonic() - start < 4


def test_an_endless_body_is_cut_at_the_files_size(tmp_path):
    """20 MB with no Content-Length stands in for endless: the client hangs up just past 1,115,394 bytes."""
    stats = {}
    with serve_bytes(b"y" * 1_000_000, repeat=20, content_length=False, stats=stats) as url, \
            env(BIGRAM_DATA_URL=url):
        _fails_cleanly(tmp_path, f"went on past Tiny Shakespeare's {TINY_SHAKESPEARE_BYTES:,} bytes")
    assert stats["sent"] < 20_000_000  # the server's writes failed once the client was gone


def test_dev_zero_is_cut_at_the_files_size(tmp_path):
    with env(BIGRAM_DATA_URL="file:///dev/zero"):
        _fails_cleanly(tmp_path, f"went on past Tiny Shakespeare's {TINY_SHAKESPEARE_BYTES:,} bytes")


def test_an_announced_size_over_the_cap_is_refused_before_reading(tmp_path):
    stats = {}
    with serve_bytes(b"z" * 4_000_000, content_length=10**12, stats=stats) as url, env(BIGRAM_DATA_URL=url):
        _fails_cleanly(tmp_path, "announces 1,000,000,000,000 bytes")


@pytest.mark.parametrize("bad", ["0", "-5", "soon", "nan", "inf"])
def test_a_bad_time_limit_is_one_line(tmp_path, bad):
    with env(BIGRAM_DOWNLOAD_TIMEOUT=bad):
        code, _, err = run_cli([*TRAIN, "--out", tmp_path / "o"])
    assert code == 2
    assert message_lines(err) == [f"error: $BIGRAM_DOWNLOAD_TIMEOUT must be a number of seconds > 0, got {bad!r}; "
                                  "unset it for the default of 120"]


def test_progress_is_one_line_with_size_and_rate_when_piped(tmp_path, shakespeare_path):
    with serve_bytes(Path(shakespeare_path).read_bytes()) as url, env(BIGRAM_DATA_URL=url):
        code, _, err = run_cli([*TRAIN, "--out", tmp_path / "o"])
    assert code == 0, err
    [line] = [ln for ln in err.splitlines() if "Tiny Shakespeare" in ln]
    assert re.fullmatch(rf"downloading Tiny Shakespeare \(1,115,394 bytes\) from {re.escape(url)} \.\.\. "
                        r"1,115,394 bytes in \d+\.\d\d s \(\d+\.\d\d MB/s\)", line), line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_with_size_and_rate_on_a_terminal(tmp_path, shakespeare_path):
    term = Terminal()
    with serve_bytes(Path(shakespeare_path).read_bytes()) as url:
        path = download_tiny_shakespeare(tmp_path / "cache" / TINY_SHAKESPEARE_NAME, url, stream=term)
    assert sha256_file(path) == TINY_SHAKESPEARE_SHA256
    shown = term.getvalue()
    assert "\x1b[" in shown  # drawn with terminal control codes, not one plain line
    assert "1.1/1.1 MB" in shown and re.search(r"\d+(\.\d+)? [kMG]?B/s", shown)


def _cache_file(tmp_path):
    (tmp_path / "cachefile").write_text("my notes\n")
    return tmp_path / "cachefile"


def _cache_dangling(tmp_path):
    (tmp_path / "cachelink").symlink_to(tmp_path / "gone")
    return tmp_path / "cachelink"


def _cache_under_a_file(tmp_path):
    return _cache_file(tmp_path) / "bigram"


@pytest.mark.parametrize("make, says", [
    (_cache_file, "is a file, not a directory"),
    (_cache_dangling, "is a symbolic link to"),
    (_cache_under_a_file, "cannot be created"),
], ids=["regular-file", "dangling-link", "under-a-file"])
def test_a_bad_cache_dir_is_one_line_naming_it_before_any_download(make, says, tmp_path, shakespeare_path):
    cache = make(tmp_path)
    stats: dict = {}
    with serve_bytes(Path(shakespeare_path).read_bytes(), stats=stats) as url, \
            env(BIGRAM_DATA_URL=url, BIGRAM_CACHE_DIR=str(cache)):
        code, _, err = run_cli([*TRAIN, "--out", tmp_path / "o"])
    [line] = message_lines(err)
    assert code == 2 and line.startswith(f"error: $BIGRAM_CACHE_DIR ({cache}) {says}"), err
    assert "point BIGRAM_CACHE_DIR at a writable directory" in line
    assert stats["sent"] == 0, "downloaded before finding that it could not be cached"
    if (tmp_path / "cachefile").exists():
        assert (tmp_path / "cachefile").read_text() == "my notes\n"


def test_an_unwritable_cache_dir_is_one_line(tmp_path, monkeypatch):
    """As root every directory is writable, so the OS's answer is stood in for: this user may not write."""
    import bigram.core.download as dl

    cache = tmp_path / "ro"
    cache.mkdir()
    real = os.access
    monkeypatch.setattr(dl.os, "access", lambda p, mode, **kw: False if Path(p) == cache else real(p, mode, **kw))
    with env(BIGRAM_CACHE_DIR=str(cache)):
        code, _, err = run_cli([*TRAIN, "--out", tmp_path / "o"])
    [line] = message_lines(err)
    assert code == 2 and f"$BIGRAM_CACHE_DIR ({cache}) is a directory this user cannot write to" in line, err


def test_two_downloads_at_once_cache_one_whole_file(tmp_path, shakespeare_path):
    """Each download writes its own temporary and renames it over the cache: two at once never mix."""
    import threading

    dest = tmp_path / "cache" / TINY_SHAKESPEARE_NAME
    errors = []

    def fetch(url):
        try:
            download_tiny_shakespeare(dest, url=url, stream=io.StringIO())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with serve_bytes(Path(shakespeare_path).read_bytes(), drip_s=0) as url:
        threads = [threading.Thread(target=fetch, args=(url,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors and sha256_file(dest) == TINY_SHAKESPEARE_SHA256
    assert [p.name for p in dest.parent.iterdir()] == [TINY_SHAKESPEARE_NAME]
