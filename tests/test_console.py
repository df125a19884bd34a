"""Every console works: the real CLI in a subprocess, on streams that cannot carry everything.

Issue 11, point 4. A console that is not UTF-8 gets what it can carry and
backslash escapes for the rest, with one warning; a closed stdout (`>&-`) or
a reader that goes away (`| head -c1`) never gives a traceback, and the
command still finishes its work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from clirun import run_cli

# é and ü are in cp1252, the Greek letters and the snowman are not
TEXT = "héllo wörld ☃ über alles\nαβγ is Greek, γβα backwards\n" * 40


def bigram(*argv, encoding: str | None = "utf-8", **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONUTF8", None)
    if encoding is not None:
        env["PYTHONIOENCODING"] = encoding
    return subprocess.run([sys.executable, "-m", "bigram", *map(str, argv)], env=env, capture_output=True, **kw)


def warnings(stderr: bytes) -> list[str]:
    return [ln for ln in stderr.decode("ascii", "replace").splitlines() if ln.startswith("warning:")]


def no_traceback(r: subprocess.CompletedProcess) -> None:
    assert b"Traceback" not in r.stderr and b"Error:" not in r.stderr, r.stderr.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint whose vocabulary holds characters cp1252 lacks."""
    d = tmp_path_factory.mktemp("console")
    (d / "u.txt").write_text(TEXT, encoding="utf-8")
    code, _, err = run_cli(["-b", "numpy", "train", "--data", d / "u.txt", "--out", d / "ck", "--steps", "50"])
    assert code == 0, err
    return d / "ck"


def cp1252_of(utf8_output: bytes) -> bytes:
    """What a cp1252 console should get: every character it has as is, the rest as escapes."""
    return utf8_output.decode("utf-8").encode("cp1252", "backslashreplace")


@pytest.mark.parametrize("command", [
    ["-b", "numpy", "generate", "--max-new-tokens", "400"],
    ["vocab"],
])
def test_a_cp1252_console_gets_what_it_can_carry_and_escapes_the_rest(checkpoint, command):
    utf8 = bigram(*command, "--checkpoint", checkpoint)
    assert utf8.returncode == 0 and warnings(utf8.stderr) == []
    r = bigram(*command, "--checkpoint", checkpoint, encoding="cp1252")
    no_traceback(r)
    assert r.returncode == 0
    assert r.stdout == cp1252_of(utf8.stdout)  # é stays é (one cp1252 byte); α becomes \u03b1
    text = utf8.stdout.decode("utf-8")
    escaped = len(text) - len(text.encode("cp1252", "ignore"))
    assert escaped > 0 and "\\u03b1" in r.stdout.decode("cp1252")
    [w] = warnings(r.stderr)  # said once, however many characters
    assert f"warning: {escaped} character(s)" in w and "cp1252" in w and "PYTHONIOENCODING=utf-8" in w


def test_trains_sample_on_a_cp1252_console(tmp_path):
    (tmp_path / "u.txt").write_text(TEXT, encoding="utf-8")
    r = bigram("-b", "numpy", "train", "--data", tmp_path / "u.txt", "--out", tmp_path / "ck", "--steps", "50",
               encoding="cp1252")  # and its default 500-token sample
    no_traceback(r)
    assert r.returncode == 0 and (tmp_path / "ck" / "model.safetensors").is_file()
    same = bigram("-b", "numpy", "generate", "--checkpoint", tmp_path / "ck", "--max-new-tokens", "500")
    assert r.stdout == cp1252_of(same.stdout)  # train's sample is generate's text, escaped the same way
    assert len(warnings(r.stderr)) == 1


def test_a_closed_stdout_is_one_warning_and_the_work_is_done(checkpoint, tmp_path):
    closed = {"preexec_fn": lambda: os.close(1)}
    r = bigram("-b", "numpy", "generate", "--checkpoint", checkpoint, "--max-new-tokens", "100", **closed)
    no_traceback(r)
    assert r.returncode == 0
    [w] = warnings(r.stderr)
    assert w.startswith("warning: stdout is closed, so ") and "bytes of output were dropped" in w
    (tmp_path / "u.txt").write_text(TEXT, encoding="utf-8")
    r = bigram("-b", "numpy", "train", "--data", tmp_path / "u.txt", "--out", tmp_path / "ck", "--steps", "20",
               "--json", **closed)
    no_traceback(r)
    assert r.returncode == 0 and (tmp_path / "ck" / "model.safetensors").is_file()
    assert "stdout is closed" in warnings(r.stderr)[0]  # the JSON result had nowhere to go


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_reader_that_goes_away_is_no_error(checkpoint, unbuffered):
    # 300,000 tokens overflow the pipe: the writer must block, then meet EPIPE when the reader leaves
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}  # "1": stdout is a raw FileIO, which takes part of a write
    p = subprocess.Popen([sys.executable, "-m", "bigram", "-b", "numpy", "generate", "--checkpoint", str(checkpoint),
                          "--max-new-tokens", "300000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert len(p.stdout.read(1)) == 1  # `| head -c1`
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=120) == 0
    assert b"Traceback" not in err and b"Broken pipe" not in err and warnings(err) == []


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_a_training_run_piped_into_head_still_saves(tmp_path, unbuffered):
    (tmp_path / "u.txt").write_text(TEXT * 10, encoding="utf-8")
    # an evaluation line every step: far more than a pipe holds once the reader has gone
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    p = subprocess.Popen([sys.executable, "-m", "bigram", "-b", "numpy", "train", "--data", str(tmp_path / "u.txt"),
                          "--out", str(tmp_path / "ck"), "--steps", "3000", "--eval-interval", "1", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = p.stderr.readline()  # `2>&1 | head -1`
    p.stderr.close()
    out = p.stdout.read()
    assert p.wait(timeout=300) == 0 and first.startswith(b"backend numpy")
    assert json.loads(out)["steps"] == 3000
    assert (tmp_path / "ck" / "model.safetensors").is_file()
