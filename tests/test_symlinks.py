"""Links are never followed, for writing or for reading what a checkpoint or a prepared directory names
(issue 12 section 2), and the files bigram writes get ordinary permissions.

Each link below points at a file that would *work* if followed (another checkpoint's, another prepared
directory's) or at a file of the user's, so a command that followed it would succeed or change the user's
file; every command must instead refuse with one line naming the link, and leave everything outside the
paths typed on the command line exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from clirun import message_lines, run_cli, serve_bytes, small_text, train_checkpoint

NP = ["--backend", "numpy"]


class Workspace:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.data = tmp / "small.txt"
        self.ck = tmp / "ck"
        self.outside = tmp / "outside"  # what the links point at: never written, never read
        self.other = self.outside / "other"
        self.victim = self.outside / "victim.txt"
        self.p = tmp / "p"

    def build(self, shakespeare_path: Path) -> "Workspace":
        """Two checkpoints, two prepared directories, a victim file: made once, copied for each test."""
        self.data.write_text(small_text(shakespeare_path))
        train_args = ("--steps", "4", "--eval-interval", "2", "--decay-steps", "8")
        train_checkpoint(self.ck, self.data, *train_args)
        train_checkpoint(self.other, self.data, *train_args)
        self.victim.write_text("the user's file\n")
        for d in (self.p, self.outside / "p2"):
            code, _, err = run_cli(["data", "prepare", self.data, "--out", d])
            assert code == 0, err
        return self

    def link(self, at: Path, to: Path) -> None:
        if at.exists() or at.is_symlink():
            shutil.rmtree(at) if at.is_dir() and not at.is_symlink() else at.unlink()
        at.symlink_to(to)

    def state(self) -> dict:
        """Bytes, inode and mtime of everything outside: a write through a link changes one of them."""
        out = {}
        for p in sorted(self.outside.rglob("*")):
            st = os.lstat(p)
            out[str(p)] = (st.st_ino, st.st_mtime_ns, p.read_bytes() if p.is_file() else None)
        return out


@pytest.fixture(scope="module")
def built(tmp_path_factory, shakespeare_path) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("ws")).build(shakespeare_path)


@pytest.fixture
def ws(tmp_path, built) -> Workspace:
    """A fresh copy of the built workspace (each test plants its own links in it)."""
    shutil.copytree(built.tmp, tmp_path, symlinks=True, dirs_exist_ok=True)
    return Workspace(tmp_path)


def _fifo(at: Path) -> None:
    at.unlink()
    os.mkfifo(at)


# (id, setup, argv, the entry the error must name, what it must say)
CASES = [
    ("plot.png-to-victim/plot", lambda w: w.link(w.ck / "plot.png", w.victim),
     lambda w: [*NP, "plot", "--checkpoint", w.ck], "ck/plot.png", "symbolic link"),
    ("metrics-to-victim/fresh-train", lambda w: w.link(w.ck / "metrics.jsonl", w.victim),
     lambda w: [*NP, "train", "--data", w.data, "--steps", 2, "--out", w.ck, "--max-new-tokens", 0], "ck/metrics.jsonl",
     "symbolic link"),
    ("metrics-to-another-run/resume", lambda w: w.link(w.ck / "metrics.jsonl", w.other / "metrics.jsonl"),
     lambda w: [*NP, "train", "--resume", w.ck, "--data", w.data, "--steps", 2, "--max-new-tokens", 0],
     "ck/metrics.jsonl", "symbolic link"),
    ("metrics-to-another-run/plot", lambda w: w.link(w.ck / "metrics.jsonl", w.other / "metrics.jsonl"),
     lambda w: [*NP, "plot", "--checkpoint", w.ck], "ck/metrics.jsonl", "symbolic link"),
    ("metrics-fifo/resume", lambda w: _fifo(w.ck / "metrics.jsonl"),
     lambda w: [*NP, "train", "--resume", w.ck, "--data", w.data, "--steps", 2, "--max-new-tokens", 0],
     "ck/metrics.jsonl", "FIFO"),
    ("model-to-another-run/generate", lambda w: w.link(w.ck / "model.safetensors", w.other / "model.safetensors"),
     lambda w: [*NP, "generate", "--checkpoint", w.ck, "--max-new-tokens", 5], "ck/model.safetensors",
     "symbolic link"),
    ("optimizer-to-another-run/resume",
     lambda w: w.link(w.ck / "optimizer.safetensors", w.other / "optimizer.safetensors"),
     lambda w: [*NP, "train", "--resume", w.ck, "--data", w.data, "--steps", 2, "--max-new-tokens", 0],
     "ck/optimizer.safetensors", "symbolic link"),
    ("config-to-another-run/vocab", lambda w: w.link(w.ck / "config.json", w.other / "config.json"),
     lambda w: ["vocab", "--checkpoint", w.ck], "ck/config.json", "symbolic link"),
    ("config-to-another-run/train-into-it", lambda w: w.link(w.ck / "config.json", w.other / "config.json"),
     lambda w: [*NP, "train", "--data", w.data, "--steps", 2, "--out", w.ck, "--max-new-tokens", 0], "ck/config.json",
     "symbolic link"),
    ("save-stage-to-another-run/train-into-it", lambda w: w.link(w.ck / ".bigram-save", w.other),
     lambda w: [*NP, "train", "--data", w.data, "--steps", 2, "--out", w.ck, "--max-new-tokens", 0], "ck/.bigram-save",
     "symbolic link"),
    ("prepared-vocab-to-another/train", lambda w: w.link(w.p / "vocab.json", w.outside / "p2" / "vocab.json"),
     lambda w: [*NP, "train", "--data", w.p, "--steps", 2, "--out", w.tmp / "o", "--max-new-tokens", 0], "p/vocab.json",
     "symbolic link"),
    ("prepared-train.bin-to-another/train", lambda w: w.link(w.p / "train.bin", w.outside / "p2" / "train.bin"),
     lambda w: [*NP, "train", "--data", w.p, "--steps", 2, "--out", w.tmp / "o", "--max-new-tokens", 0], "p/train.bin",
     "symbolic link"),
    ("prepared-val.bin-to-another/eval", lambda w: w.link(w.p / "val.bin", w.outside / "p2" / "val.bin"),
     lambda w: [*NP, "eval", "--checkpoint", w.ck, "--data", w.p], "p/val.bin", "symbolic link"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_links_are_refused_never_followed(case, ws):
    _, setup, argv, named, says = case
    setup(ws)
    before = ws.state()
    code, _, err = run_cli(argv(ws))
    lines = message_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {ws.tmp / named} is ") and says in lines[0], lines[0]
    assert ws.state() == before, "something outside the paths typed was changed"
    assert not (ws.tmp / "o").exists()


def test_data_prepare_never_writes_through_a_planted_temporary_link(ws):
    for name in (".train.bin.tmp", ".val.bin.tmp"):
        ws.link(ws.p / name, ws.victim)
    before = ws.state()
    code, _, err = run_cli(["data", "prepare", ws.data, "--out", ws.p])
    assert code == 0, err
    assert ws.state() == before
    assert run_cli([*NP, "train", "--data", ws.p, "--steps", 2, "--out", ws.tmp / "o", "--max-new-tokens", 0])[0] == 0


def test_plot_to_a_link_the_user_typed_is_refused(ws):
    import numpy as np

    from bigram.core.errors import BigramError
    from bigram.core.plot import plot_run

    link = ws.tmp / "link.png"
    link.symlink_to(ws.victim)
    before = ws.state()
    with pytest.raises(BigramError, match="is a symbolic link"):
        plot_run(link, [], np.full((2, 2), 0.5), ["a", "b"], optimum=None, title="t")
    assert ws.state() == before and link.is_symlink()


# -- a save reaches nothing outside DIR, whatever DIR holds ----------------------------------------------


def test_leftovers_named_like_bigrams_temporaries_never_lead_outside(ws):
    """A `.bigram-tmp-*` or `.bigram-save` name without bigram's marker is not bigram's: a link of that name
    is neither followed nor removed, and a directory keeps everything in it."""
    evil = ws.outside / "evil"
    shutil.copytree(ws.other, evil)
    (ws.ck / ".bigram-tmp-1-linked").symlink_to(evil)
    kept = ws.ck / ".bigram-tmp-2-dir"
    kept.mkdir()
    (kept / "precious.txt").write_text("mine\n")
    (kept / "config.json").write_text("{}\n")
    before = ws.state()
    code, _, err = run_cli([*NP, "train", "--resume", ws.ck, "--data", ws.data, "--steps", 2, "--max-new-tokens", 0])
    assert code == 0, err
    assert ws.state() == before
    assert os.readlink(ws.ck / ".bigram-tmp-1-linked") == str(evil)
    assert sorted(p.name for p in kept.iterdir()) == ["config.json", "precious.txt"]


def test_a_linked_stage_is_not_read(ws):
    """generate reads the checkpoint's own files, never a `.bigram-save` link to another run's."""
    argv = [*NP, "generate", "--checkpoint", ws.ck, "--max-new-tokens", 20]
    code, alone, err = run_cli(argv)
    assert code == 0, err
    from bigram.core.safefs import MARK, MARKER

    seeded = train_checkpoint(ws.outside / "seeded", ws.data, "--seed", "7")  # other weights, other text
    (seeded / MARKER).write_bytes(MARK)  # even marked as a stage, a link is not one
    ws.link(ws.ck / ".bigram-save", seeded)
    before = ws.state()
    code, linked, err = run_cli(argv)
    assert code == 0 and linked == alone, err
    assert ws.state() == before and (ws.ck / ".bigram-save").is_symlink()


# -- permissions ------------------------------------------------------------------------------------------


def _cached_corpus(w: Workspace, shakespeare_path: Path) -> Path:
    from bigram.core.data import download_tiny_shakespeare

    with serve_bytes(shakespeare_path.read_bytes()) as url:
        return download_tiny_shakespeare(w.tmp / "cache" / "tinyshakespeare.txt", url=url)


def _resumed(w: Workspace) -> Path:
    assert run_cli([*NP, "train", "--resume", w.ck, "--data", w.data, "--steps", 2, "--max-new-tokens", 0])[0] == 0
    return w.ck / "metrics.jsonl"


def _fit(w: Workspace) -> Path:
    assert run_cli([*NP, "fit", "--data", w.data, "--out", w.tmp / "fit"])[0] == 0
    return w.tmp / "fit" / "metrics.jsonl"


def _prepared(w: Workspace, name: str) -> Path:
    assert run_cli(["data", "prepare", w.data, "--out", w.tmp / "p3"])[0] == 0
    return w.tmp / "p3" / name


def _trained(w: Workspace, name: str) -> Path:
    train_checkpoint(w.tmp / "fresh", w.data)
    return w.tmp / "fresh" / name


def _plotted(w: Workspace) -> Path:
    assert run_cli([*NP, "plot", "--checkpoint", w.ck])[0] == 0
    return w.ck / "plot.png"


WRITTEN = {
    "vocab.json": lambda w, sp: _prepared(w, "vocab.json"),
    "train.bin": lambda w, sp: _prepared(w, "train.bin"),
    "metrics.jsonl-after-resume": lambda w, sp: _resumed(w),
    "metrics.jsonl-after-fit": lambda w, sp: _fit(w),
    "cached-corpus": _cached_corpus,
    "model.safetensors": lambda w, sp: _trained(w, "model.safetensors"),
    "config.json": lambda w, sp: _trained(w, "config.json"),
    "metrics.jsonl-after-train": lambda w, sp: _trained(w, "metrics.jsonl"),
    "plot.png": lambda w, sp: _plotted(w),
}


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask-022", "umask-027"])
@pytest.mark.parametrize("what", list(WRITTEN))
def test_files_bigram_writes_get_ordinary_permissions(what, umask, ws, shakespeare_path):
    old = os.umask(umask)
    try:
        path = WRITTEN[what](ws, shakespeare_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask, f"{path}: {oct(os.stat(path).st_mode)}"


def test_systems_without_nofollow_or_at_calls_still_refuse_links(ws, monkeypatch):
    """Where the OS lacks O_NOFOLLOW and the *at calls (dir_fd), bigram works by path and refuses any name that
    lstat reports as a link, instead of following it."""
    from bigram.core import safefs

    monkeypatch.setattr(safefs, "_AT", False)
    monkeypatch.setattr(safefs, "NOFOLLOW", 0)
    (ws.ck / "mine.txt").write_text("mine\n")
    code, _, err = run_cli([*NP, "train", "--resume", ws.ck, "--data", ws.data, "--steps", 3, "--save-interval", 1,
                            "--max-new-tokens", 0])
    assert code == 0, err
    assert run_cli([*NP, "generate", "--checkpoint", ws.ck, "--max-new-tokens", 5])[0] == 0
    assert sorted(p.name for p in ws.ck.iterdir()) == ["config.json", "metrics.jsonl", "mine.txt",
                                                        "model.safetensors", "optimizer.safetensors"]
    ws.link(ws.ck / "model.safetensors", ws.other / "model.safetensors")
    ws.link(ws.ck / "plot.png", ws.victim)
    before = ws.state()
    for argv in ([*NP, "generate", "--checkpoint", ws.ck], [*NP, "plot", "--checkpoint", ws.ck]):
        code, _, err = run_cli(argv)
        assert code == 2 and "is a symbolic link" in message_lines(err)[0], err
    assert ws.state() == before
