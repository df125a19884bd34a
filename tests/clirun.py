"""Helpers shared by the CLI robustness tests and the docs generator (tests/gen_error_docs.py).

run_cli runs `bigram ARGV` in-process (no interpreter start-up per case) and
returns (exit code, stdout, stderr); any exception other than SystemExit
escapes, which is exactly what a traceback would have been.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    from bigram.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def ok(argv: list) -> tuple[str, str]:
    """run_cli that must succeed: (stdout, stderr), the stderr shown if it did not."""
    code, out, err = run_cli(argv)
    assert code == 0, err
    return out, err


def message_lines(stderr: str) -> list[str]:
    """The lines the CLI prints for a failure or a warning."""
    return [ln for ln in stderr.splitlines() if ln.startswith(("error:", "warning:", "interrupted:"))]


def small_text(shakespeare_path: Path, n: int = 3000) -> str:
    """The first n characters of Tiny Shakespeare: a real text, small enough for fast tests."""
    return Path(shakespeare_path).read_text(encoding="utf-8")[:n]


def train_checkpoint(out: Path, data: Path, *extra: str, backend: str = "numpy", steps: int = 2) -> Path:
    """A small trained checkpoint, made through the CLI itself."""
    code, _, err = run_cli(["--backend", backend, "train", "--data", data, "--steps", steps, "--out", out,
                            "--max-new-tokens", "0", *extra])
    assert code == 0, err
    return out


@contextlib.contextmanager
def serve_bytes(body: bytes, *, content_length: int | bool = True, drip_s: float = 0.0, repeat: int = 1,
                stop_after_s: float | None = None, stats: dict | None = None):
    """An HTTP server on 127.0.0.1 answering every GET with `body`; yields its URL.

    A misbehaving server, for the download's limits:
      content_length  True: the body's length; False: no header; an int: announce that many bytes
      drip_s          send one byte, then wait this long, and so on
      repeat          send the body this many times over (a long or, for practical purposes, endless body)
      stop_after_s    hang up after this long, whatever is left (so a client without limits ends too)
      stats           filled in with "sent": the body bytes written before the client hung up
    """
    stats = {} if stats is None else stats
    stats["sent"] = 0

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            if content_length is not False:
                n = len(body) * repeat if content_length is True else content_length
                self.send_header("Content-Length", str(n))
            self.end_headers()
            start = time.monotonic()
            try:
                for _ in range(repeat):
                    for piece in _pieces(body, 1 if drip_s else 1 << 16):
                        if stop_after_s is not None and time.monotonic() - start > stop_after_s:
                            return
                        self.wfile.write(piece)
                        self.wfile.flush()
                        stats["sent"] += len(piece)
                        time.sleep(drip_s)
            except OSError:  # the client hung up: what a limit is for
                pass

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tinyshakespeare.txt"
    finally:
        server.shutdown()
        server.server_close()


def _pieces(body: bytes, size: int):
    return (body[i:i + size] for i in range(0, len(body), size))


@contextlib.contextmanager
def env(**values: str):
    """Set environment variables for the duration of a block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
