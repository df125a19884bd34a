"""Tiny Shakespeare: found in the user cache, else downloaded once, checked and cached.

The download shows its progress (a rich bar on a terminal, one line in a pipe
or a log) and is bounded three ways, so it can neither hang nor fill memory:
a total time limit (not only a per-read timeout, which a server dripping one
byte at a time would never trip), a size cap (the file's size is known), and a
body shorter than the server announced is an error, not a truncated corpus.
Each failure is one line naming the fix. Nothing is cached unless the sha256
matches.

urllib is imported here only, so commands that never download do not pay for it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Mapping, TextIO

from bigram.core.errors import BigramError

# The file nanoGPT's shakespeare_char/prepare.py downloads (char-rnn's copy).
TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_NAME = "tinyshakespeare.txt"
TINY_SHAKESPEARE_BYTES = 1_115_394  # the size cap: a longer body cannot be the file

TIME_LIMIT_ENV = "BIGRAM_DOWNLOAD_TIMEOUT"  # seconds for the whole download
DEFAULT_TIME_LIMIT_S = 120.0  # 1.1 MB at under 10 kB/s: a link too slow to train on anyway
READ_TIMEOUT_S = 30.0  # connecting, and each read: a server that sends nothing at all
CHUNK = 1 << 16
FIX = "pass --data FILE with a local text file, or retry when online"


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where downloads live: $BIGRAM_CACHE_DIR, else the platform's user cache."""
    override = environ.get("BIGRAM_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("bigram"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_tiny_shakespeare(cache: Path | None = None) -> Path | None:
    """The cached copy when it is there and its sha256 is right, else None."""
    path = (cache or cache_dir()) / TINY_SHAKESPEARE_NAME
    if path.is_file() and sha256_file(path) == TINY_SHAKESPEARE_SHA256:
        return path
    return None


def tiny_shakespeare_path(cache: Path | None = None, url: str | None = None) -> Path:
    """The cached Tiny Shakespeare, downloading it on first use (cache and url: the environment's by default)."""
    found = cached_tiny_shakespeare(cache)
    if found is not None:
        return found
    where = cache or cache_dir()
    check_cache_dir(where, from_env=cache is None and bool(os.environ.get("BIGRAM_CACHE_DIR")))
    return download_tiny_shakespeare(where / TINY_SHAKESPEARE_NAME, url)


def check_cache_dir(path: Path, *, from_env: bool = True) -> None:
    """A cache bigram can create or write into, checked before the download: one line naming the fix."""
    name = f"$BIGRAM_CACHE_DIR ({path})" if from_env else f"the cache directory {path}"
    fix = ("point BIGRAM_CACHE_DIR at a writable directory, or unset it for the default cache" if from_env else
           "make it a writable directory, or set BIGRAM_CACHE_DIR to one")
    problem = _cache_problem(path)
    if problem is not None:
        raise BigramError(f"{name} {problem}; {fix}")


def _cache_problem(path: Path) -> str | None:
    if path.is_symlink() and not path.exists():
        return f"is a symbolic link to {os.readlink(path)}, which does not exist"
    if path.exists():
        if not path.is_dir():
            return "is a file, not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return "is a directory this user cannot write to"
        return None
    parent = next((p for p in path.parents if p.exists() or p.is_symlink()), None)  # what mkdir -p starts from
    if parent is not None and not parent.is_dir():
        return f"cannot be created: {parent} is not a directory"
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: this user cannot write to {parent}"
    return None


def time_limit(environ: Mapping[str, str] = os.environ) -> float:
    """$BIGRAM_DOWNLOAD_TIMEOUT seconds, or the default."""
    raw = environ.get(TIME_LIMIT_ENV)
    if raw is None or raw == "":
        return DEFAULT_TIME_LIMIT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise BigramError(f"${TIME_LIMIT_ENV} must be a number of seconds > 0, got {raw!r}; "
                          f"unset it for the default of {DEFAULT_TIME_LIMIT_S:g}")
    return value


def download_tiny_shakespeare(dest: Path | None = None, url: str | None = None, *, limit_s: float | None = None,
                              stream: TextIO | None = None) -> Path:
    """Download Tiny Shakespeare to `dest`, check its sha256 and cache it atomically.

    $BIGRAM_DATA_URL overrides the address (a mirror, or a file:// URL); the
    sha256 is checked either way and a file whose hash is wrong is never kept.
    Progress goes to `stream` (stderr).
    """
    dest = dest or cache_dir() / TINY_SHAKESPEARE_NAME
    url = url or os.environ.get("BIGRAM_DATA_URL") or TINY_SHAKESPEARE_URL
    limit_s = time_limit() if limit_s is None else limit_s
    data = fetch(url, limit_s, TINY_SHAKESPEARE_BYTES, stream or sys.stderr, dest)
    got = hashlib.sha256(data).hexdigest()
    if got != TINY_SHAKESPEARE_SHA256:
        raise BigramError(
            f"downloaded file from {url} has sha256 {got}, expected {TINY_SHAKESPEARE_SHA256}; "
            "it was not kept: check the URL ($BIGRAM_DATA_URL) or pass --data FILE"
        )
    from bigram.core.safefs import write_file_atomic

    write_file_atomic(dest, data)
    return dest


def fetch(url: str, limit_s: float, max_bytes: int, stream: TextIO, dest: Path) -> bytes:
    """The body at `url`: at most max_bytes, within limit_s seconds in all, with progress on `stream`."""
    import http.client
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + limit_s
    progress = Progress(stream, url, max_bytes)
    try:
        with urllib.request.urlopen(url, timeout=min(READ_TIMEOUT_S, limit_s)) as resp:
            announced = _content_length(resp)
            if announced is not None and announced > max_bytes:
                raise _too_big(url, f"announces {announced:,} bytes, more than Tiny Shakespeare's {max_bytes:,},")
            body = _read_body(resp, url, deadline, limit_s, max_bytes, progress)
        if announced is not None and len(body) < announced:
            raise BigramError(f"the download from {url} ended after {len(body):,} of the {announced:,} bytes "
                              f"the server announced; {FIX}")
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        progress.close(ok=False)
        reason = getattr(e, "reason", None) or e.__class__.__name__ + (f": {e}" if str(e) else "")
        raise BigramError(f"could not download Tiny Shakespeare from {url} ({reason}) and it is not cached at "
                          f"{dest}; {FIX}") from None
    except BaseException:  # a limit (BigramError) or Ctrl-C: end the progress line first
        progress.close(ok=False)
        raise
    progress.close(ok=True)
    return body


def _content_length(resp) -> int | None:
    raw = resp.headers.get("Content-Length") if getattr(resp, "headers", None) is not None else None
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _too_big(url: str, what: str) -> BigramError:
    return BigramError(f"the download from {url} {what} and was stopped: it is not that file; "
                       "check $BIGRAM_DATA_URL or pass --data FILE")


def _read_body(resp, url: str, deadline: float, limit_s: float, max_bytes: int, progress: "Progress") -> bytes:
    """Read in chunks of whatever has arrived (read1), checking the clock and the size after each."""
    parts, n = [], 0
    read = getattr(resp, "read1", resp.read)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BigramError(f"the download from {url} took more than {limit_s:g} s ({n:,} bytes so far) and "
                              f"was stopped; retry on a faster link, raise ${TIME_LIMIT_ENV}, or pass --data FILE")
        _set_read_timeout(resp, min(READ_TIMEOUT_S, left))
        try:
            chunk = read(min(CHUNK, max_bytes + 1 - n))
        except TimeoutError:
            if time.monotonic() < deadline:
                raise  # the per-read timeout: a server that went silent
            continue  # the time limit itself: reported above
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        n += len(chunk)
        if n > max_bytes:
            raise _too_big(url, f"went on past Tiny Shakespeare's {max_bytes:,} bytes")
        progress.update(n)


def _set_read_timeout(resp, seconds: float) -> None:
    """Bound the next socket read by what is left of the time limit (http only: file:// reads never block)."""
    sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


class Progress:
    """A rich progress bar (size, rate, time left) on a terminal; one line when `stream` is not one."""

    def __init__(self, stream: TextIO, url: str, total: int):
        self.stream, self.total, self.start, self.n = stream, total, time.monotonic(), 0
        self.bar = None
        what = f"Tiny Shakespeare ({total:,} bytes) from {url}"
        if _isatty(stream):
            from rich.console import Console
            from rich.progress import (BarColumn, DownloadColumn, Progress as Bar, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            self.bar = Bar(TextColumn("downloading Tiny Shakespeare"), BarColumn(), DownloadColumn(),
                           TransferSpeedColumn(), TimeRemainingColumn(), console=Console(file=stream))
            self.task = self.bar.add_task("download", total=total)
            self.bar.start()
            self.bar.console.print(f"downloading {what}", highlight=False)
        else:  # a pipe or a log: the line starts now and ends with the outcome
            stream.write(f"downloading {what} ... ")
            stream.flush()

    def update(self, n: int) -> None:
        self.n = n
        if self.bar is not None:
            self.bar.update(self.task, completed=n)

    def close(self, ok: bool) -> None:
        secs = max(time.monotonic() - self.start, 1e-9)
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
            return
        if self.stream is None:
            return
        rate = f"{self.n / secs / 1e6:.2f} MB/s"
        self.stream.write(f"{self.n:,} bytes in {secs:.2f} s ({rate})\n" if ok else
                          f"failed after {self.n:,} bytes in {secs:.2f} s\n")
        self.stream.flush()
        self.stream = None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
