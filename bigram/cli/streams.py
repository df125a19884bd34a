"""stdout and stderr that never raise: a console that cannot show a character, a closed or a broken pipe.

For the length of one command (`guarded()` in app.main), each standard stream
is rewrapped:

- A character the stream's encoding lacks (a cp1252 console, `> file.txt` on
  Windows) is written as a backslash escape, and one warning at the end says
  how many were escaped and how to get them as they are.
- A reader that went away (`| head -c1`, EPIPE) makes the rest of that
  stream's output vanish: the command still finishes its work (a training run
  still saves), and the exit code is the command's own.
- A stream closed before the start (`>&-`) gets /dev/null on its descriptor,
  so no file the command opens can land on fd 1 or 2, and one warning says how
  much output was dropped.

A stream that is not a file (an in-memory one, as in-process tests use) is
left as it is: it can carry anything.
"""

from __future__ import annotations

import codecs
import io
import os
import sys
from contextlib import contextmanager

ESCAPE = "bigram-escape"


class _Counts:
    escaped = 0  # characters written as escapes since the command started


def _escape(err: UnicodeEncodeError):
    _Counts.escaped += err.end - err.start
    return codecs.backslashreplace_errors(err)


codecs.register_error(ESCAPE, _escape)


class _Bytes(io.RawIOBase):
    """The bytes under one rewrapped stream: the original binary stream, or nothing when it was closed."""

    def __init__(self, buffer, fd: int | None):
        self.buffer, self.fd = buffer, fd
        self.dropped = 0  # bytes a closed stream could not take
        self.broken = False  # the reader went away

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        if self.fd is None:
            raise io.UnsupportedOperation("fileno")
        return self.fd

    def isatty(self) -> bool:
        return self.buffer is not None and not self.broken and self.buffer.isatty()

    def write(self, b) -> int:
        n = len(b)
        if self.buffer is None:
            self.dropped += n
        elif not self.broken:
            try:
                _write_all(self.buffer, b)
                self.buffer.flush()
            except BrokenPipeError:
                self.broken = True
                _to_devnull(self.fd)  # the original's unflushed bytes go nowhere at exit, not to a traceback
        return n

    def close(self) -> None:  # the original stream belongs to the interpreter: never close it
        self.flush()
        super().close()


def _write_all(buffer, b) -> None:
    """All of `b`: under PYTHONUNBUFFERED the buffer is a raw FileIO, which may take part of it."""
    view = memoryview(b)
    while view:
        n = buffer.write(view)
        view = view[len(view) if n is None else n:]


def _to_devnull(fd: int | None) -> None:
    if fd is None:
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        if null != fd:
            os.close(null)


def _fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _wrap(stream, fd: int):
    """(new text stream, its _Bytes), or (stream, None) where it needs no guard."""
    if stream is None:  # closed before Python started: fd is free, and the next open() would take it
        if not _fd_is_open(fd):
            _to_devnull(fd)
        raw, encoding, line_buffering = _Bytes(None, fd), "utf-8", False
    elif isinstance(getattr(stream, "buffer", None), io.IOBase) and hasattr(stream, "encoding"):
        stream.flush()
        try:
            real = stream.fileno()
        except (OSError, ValueError):  # an in-memory buffer (pytest's capture): no descriptor to silence
            real = None
        raw, encoding, line_buffering = _Bytes(stream.buffer, real), stream.encoding, stream.line_buffering
    else:
        return stream, None
    text = io.TextIOWrapper(raw, encoding=encoding, errors=ESCAPE, line_buffering=line_buffering, write_through=True)
    return text, raw


@contextmanager
def guarded():
    """Rewrap sys.stdout and sys.stderr for one command; warn once at the end about what they could not carry."""
    saved = sys.stdout, sys.stderr
    _Counts.escaped = 0
    sys.stdout, out = _wrap(sys.stdout, 1)
    sys.stderr, err = _wrap(sys.stderr, 2)
    try:
        yield
    finally:
        for s in (sys.stdout, sys.stderr):
            s.flush()
        _report(out, saved[0])
        sys.stdout, sys.stderr = saved


def _report(out: _Bytes | None, stdout) -> None:
    if _Counts.escaped:
        enc = getattr(stdout, "encoding", None) or "this console's encoding"
        print(f"warning: {_Counts.escaped} character(s) of the output are not in {enc}, so they were written as "
              "backslash escapes; set PYTHONIOENCODING=utf-8 (or PYTHONUTF8=1) to get them as they are",
              file=sys.stderr)
    if out is not None and out.dropped:
        print(f"warning: stdout is closed, so {out.dropped:,} bytes of output were dropped; "
              "run the command with stdout open, or redirect it to a file", file=sys.stderr)
    sys.stderr.flush()
