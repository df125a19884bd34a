"""--out is a directory bigram owns, and it touches nothing else (issue 12 section 1, issue 11 point 8).

--out may be a new path, an empty directory or a checkpoint of bigram's; anything else is refused with one
line before training. Saves replace only bigram's own files, by name: what else lives in the directory keeps
its inode, owner, link count, blocks and mtime; nothing appears beside it; `.`, `..`, a link and the working
directory work or are refused up front. A fresh run into a checkpoint starts a fresh metrics.jsonl and says
it replaces the checkpoint; only --resume continues one. Readers never mix two saves.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from clirun import message_lines, run_cli, small_text, train_checkpoint
from bigram.core.checkpoint import load_checkpoint

NP = ["--backend", "numpy"]
OWN = {"config.json", "model.safetensors", "optimizer.safetensors", "metrics.jsonl"}


@pytest.fixture
def data(tmp_path, shakespeare_path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text(small_text(shakespeare_path))
    return path


@contextlib.contextmanager
def cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def snapshot(root: Path, skip=frozenset()) -> dict:
    """Every entry under root (links not followed), with what a rewrite, copy or delete would change."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel in skip:
                continue
            st = os.lstat(p)
            out[rel] = (st.st_ino, st.st_uid, st.st_gid, st.st_nlink, stat.S_IFMT(st.st_mode), st.st_mode & 0o7777,
                        st.st_size, st.st_blocks, st.st_mtime_ns, os.readlink(p) if stat.S_ISLNK(st.st_mode) else None)
    return out


def train_args(data: Path, out, *extra) -> list:
    return [*NP, "train", "--data", data, "--steps", 4, "--eval-interval", 2, "--out", out, "--max-new-tokens", 0,
            *extra]


# -- refused before training ----------------------------------------------------------------------


def _user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "d"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "notes.txt").write_text("mine\n")
    return d


# (id, where to run relative to tmp_path, argv builder, the directory the error must name)
REFUSED = [
    ("user-dir", ".", lambda t, data: train_args(data, t / "d"), "d"),
    ("dot-in-user-dir", "d", lambda t, data: train_args(data, "."), "."),
    ("empty-string-in-user-dir", "d", lambda t, data: train_args(data, ""), "."),
    ("dotdot-of-user-subdir", "d/sub", lambda t, data: train_args(data, ".."), ".."),
    ("ancestor-of-cwd", "d/sub/deeper", lambda t, data: train_args(data, t / "d"), "d"),
    ("link-to-user-dir", ".", lambda t, data: train_args(data, t / "link"), "link"),
    ("dangling-link", ".", lambda t, data: train_args(data, t / "dangling"), "dangling"),
    ("fit-into-user-dir", ".", lambda t, data: [*NP, "fit", "--data", data, "--out", t / "d"], "d"),
    ("resume-into-user-dir", ".", lambda t, data: [*NP, "train", "--resume", t / "ck", "--data", data,
                                                    "--steps", 2, "--out", t / "d", "--max-new-tokens", 0], "d"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_a_directory_that_is_not_a_checkpoint_is_refused_before_training(case, tmp_path, data):
    _, where, argv, named = case
    d = _user_dir(tmp_path)
    (tmp_path / "link").symlink_to(d)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    train_checkpoint(tmp_path / "ck", data)
    before = snapshot(tmp_path)
    with cwd(tmp_path / where):
        code, out, err = run_cli(argv(tmp_path, data))
    assert code == 2, err
    lines = message_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: --out ") and Path(named).name in lines[0], err
    assert "step 0" not in err and "saved" not in err, "training started before the refusal"
    assert snapshot(tmp_path) == before, "a refused --out was changed"


# -- works ------------------------------------------------------------------------------------------

# (id, run in (relative to tmp_path), argv builder, where the checkpoint ends up, its step)
WORKS = [
    ("new-nested-path", ".", lambda t, data: train_args(data, t / "a" / "b"), "a/b", 4),
    ("empty-dir", ".", lambda t, data: train_args(data, t / "empty"), "empty", 4),
    ("dot-in-empty-cwd", "empty", lambda t, data: train_args(data, "."), "empty", 4),
    ("dot-in-checkpoint", "ck", lambda t, data: train_args(data, "."), "ck", 4),
    ("empty-string-in-checkpoint", "ck", lambda t, data: train_args(data, ""), "ck", 4),
    ("dotdot-from-a-subdir-of-the-checkpoint", "ck/sub", lambda t, data: train_args(data, ".."), "ck", 4),
    ("link-to-checkpoint", ".", lambda t, data: train_args(data, t / "cklink"), "ck", 4),
    ("link-to-empty-dir", ".", lambda t, data: train_args(data, t / "emptylink"), "empty", 4),
    ("resume-dot", "ck", lambda t, data: [*NP, "train", "--resume", ".", "--data", data, "--steps", 3,
                                          "--max-new-tokens", 0], "ck", 5),
    ("resume-dot-save-interval", "ck", lambda t, data: [*NP, "train", "--resume", ".", "--data", data, "--steps", 5,
                                                        "--save-interval", 1, "--max-new-tokens", 0], "ck", 7),
    ("save-interval-dot-in-checkpoint", "ck", lambda t, data: train_args(data, ".", "--save-interval", 1), "ck", 4),
    ("resume-through-link", ".", lambda t, data: [*NP, "train", "--resume", t / "cklink", "--data", data, "--steps", 3,
                                                  "--save-interval", 2, "--max-new-tokens", 0], "ck", 5),
]


@pytest.mark.parametrize("case", WORKS, ids=[c[0] for c in WORKS])
def test_out_works_wherever_it_resolves(case, tmp_path, data):
    _, where, argv, target, step = case
    train_checkpoint(tmp_path / "ck", data, "--steps", "2")
    (tmp_path / "ck" / "sub").mkdir()
    (tmp_path / "ck" / "sub" / "mine.txt").write_text("mine\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "cklink").symlink_to(tmp_path / "ck")
    (tmp_path / "emptylink").symlink_to(tmp_path / "empty")
    beside = sorted(p.name for p in tmp_path.iterdir())
    user = snapshot(tmp_path / "ck", skip=OWN)
    with cwd(tmp_path / where):
        code, _, err = run_cli(argv(tmp_path, data))
    assert code == 0, err
    assert load_checkpoint(tmp_path / target).step == step
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(beside + ["a"] * (target == "a/b")), \
        "a save wrote beside --out"
    assert (tmp_path / "cklink").is_symlink() and (tmp_path / "emptylink").is_symlink(), "a link --out was replaced"
    assert snapshot(tmp_path / "ck", skip=OWN) == user, "a file that is not bigram's changed"
    assert set(os.listdir(tmp_path / target)) - {"sub"} == OWN


# -- the user's files inside a checkpoint -------------------------------------------------------------


def _plant(d: Path, outside: Path) -> None:
    """A hard link, a sparse file, a symlink, a FIFO and a subdirectory (with a hard-linked pair and a sparse
    file inside), owned by another user where this test may chown."""
    (d / "sub").mkdir()
    (d / "sub" / "f").write_text("x\n")
    os.link(d / "sub" / "f", d / "sub" / "g")
    os.link(outside / "target.txt", d / "hard")
    for sparse in (d / "sparse", d / "sub" / "sparse"):
        with open(sparse, "wb") as f:
            f.truncate(64 << 20)  # 64 MiB of hole: no blocks unless someone copies it
    os.symlink(outside / "target.txt", d / "link")
    os.mkfifo(d / "fifo")
    if os.geteuid() == 0:  # a copy made by this process would be owned by root, not by 4242
        for p in [d / "sub", *(d / "sub").iterdir(), d / "hard", d / "sparse", d / "link", d / "fifo"]:
            os.lchown(p, 4242, 4242)


def test_user_entries_keep_inode_owner_and_links(tmp_path, data):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("the user's file\n")
    plain = tmp_path / "plain"
    plain.mkdir()
    _plant(plain, outside)
    ck = train_checkpoint(tmp_path / "ck", data, "--steps", "2")
    _plant(ck, outside)
    before = snapshot(tmp_path, skip={f"ck/{n}" for n in OWN} | {"ck"})
    assert before["plain/sparse"][7] == 0 and before["ck/sub/g"][3] == 2  # sparse, and linked, to begin with

    code, _, err = run_cli(train_args(data, plain))
    assert code == 2 and "not a bigram checkpoint" in err
    runs = [train_args(data, ck),  # a fresh run replacing the checkpoint
            [*NP, "train", "--resume", ck, "--data", data, "--steps", 3, "--save-interval", 1, "--max-new-tokens", 0],
            [*NP, "fit", "--data", data, "--out", ck],
            [*NP, "generate", "--checkpoint", ck, "--max-new-tokens", 5]]
    for argv in runs:
        code, _, err = run_cli(argv)
        assert code == 0, err
        assert snapshot(tmp_path, skip={f"ck/{n}" for n in OWN} | {"ck"}) == before, argv
    assert stat.S_ISFIFO(os.lstat(ck / "fifo").st_mode) and (outside / "target.txt").read_text() == "the user's file\n"
    assert load_checkpoint(ck).config.get("fit") is not None


# -- one writer at a time --------------------------------------------------------------------------


def test_a_second_run_into_the_same_out_is_refused(tmp_path, data):
    fcntl = pytest.importorskip("fcntl")
    ck = train_checkpoint(tmp_path / "ck", data)
    fd = os.open(ck, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running `bigram train --out ck` holds it
        before = snapshot(tmp_path)
        code, _, err = run_cli(train_args(data, ck))
        assert code == 2 and message_lines(err) == [
            f"error: --out {ck} is being written by another bigram command (a train or a data prepare); wait for it to finish, or choose another --out"]
        assert snapshot(tmp_path) == before
    finally:
        os.close(fd)
    assert run_cli(train_args(data, ck))[0] == 0  # the lock goes with its holder


# -- a fresh run starts a fresh metrics.jsonl (issue 11 point 8) -------------------------------------


def _steps(ck: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (ck / "metrics.jsonl").read_text().splitlines()]


FIRST = {"train": lambda t, data: train_args(data, t / "ck"),
         "fit": lambda t, data: [*NP, "fit", "--data", data, "--out", t / "ck"]}
AGAIN = {"train": (lambda t, data: train_args(data, t / "ck"), [0, 2, 4]),
         "fit": (lambda t, data: [*NP, "fit", "--data", data, "--out", t / "ck"], [0]),
         "resume-another-run-into-it": (lambda t, data: [*NP, "train", "--resume", t / "other", "--data", data,
                                                         "--steps", 2, "--out", t / "ck", "--max-new-tokens", 0],
                                        [0, 2, 4])}


@pytest.mark.parametrize("again", list(AGAIN))
@pytest.mark.parametrize("first", list(FIRST))
def test_a_fresh_run_into_a_checkpoint_starts_a_fresh_metrics_file(first, again, tmp_path, data):
    train_checkpoint(tmp_path / "other", data, "--steps", "2", "--eval-interval", "2", "--decay-steps", "4")
    assert run_cli(FIRST[first](tmp_path, data))[0] == 0
    argv, steps = AGAIN[again]
    code, _, err = run_cli(argv(tmp_path, data))
    assert code == 0, err
    assert _steps(tmp_path / "ck") == steps
    warning = [ln for ln in message_lines(err) if "replaces it" in ln]
    assert len(warning) == 1 and str(tmp_path / "ck") in warning[0], err
    # a train can be continued with --resume; a closed-form fit cannot, so it is told to pick another --out
    assert ("--resume" in warning[0]) == (again != "fit") and ("another --out" in warning[0]) == (again == "fit")


def test_resume_continues_the_metrics_and_says_nothing_of_replacing(tmp_path, data):
    ck = train_checkpoint(tmp_path / "ck", data, "--steps", "4", "--eval-interval", "2", "--decay-steps", "8")
    code, _, err = run_cli([*NP, "train", "--resume", ck, "--data", data, "--steps", 4, "--max-new-tokens", 0])
    assert code == 0 and "replaces" not in err
    assert _steps(ck) == [0, 2, 4, 6, 8]


def test_a_fresh_run_that_dies_before_saving_leaves_the_old_checkpoint_and_its_metrics(tmp_path, data):
    ck = train_checkpoint(tmp_path / "ck", data, "--steps", "4", "--eval-interval", "2")
    before = {p.name: p.read_bytes() for p in ck.iterdir()}
    code, _, err = run_cli([*NP, "train", "--data", data, "--steps", 100, "--lr", "1e6", "--eval-interval", 1,
                            "--out", ck, "--max-new-tokens", 0])
    assert code == 2 and "no checkpoint was written for this run" in err
    assert {p.name: p.read_bytes() for p in ck.iterdir()} == before


# -- older checkpoints ----------------------------------------------------------------------------------


def _write_old_layout(ck: Path, source: Path) -> None:
    """What bigram 0.1.0 (before save ids) wrote: the same three files, by hand, without ids."""
    from safetensors.numpy import load, save

    meta = {"format": "pt", "bigram_version": "0.1.0"}
    ck.mkdir()
    for name in ("model.safetensors", "optimizer.safetensors"):
        (ck / name).write_bytes(save(load((source / name).read_bytes()), metadata=meta))
    cfg = json.loads((source / "config.json").read_text())
    del cfg["save_id"]
    (ck / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (ck / "metrics.jsonl").write_bytes((source / "metrics.jsonl").read_bytes())


def test_a_checkpoint_in_the_old_layout_loads_resumes_and_is_upgraded(tmp_path, data):
    src = train_checkpoint(tmp_path / "src", data, "--steps", "4", "--eval-interval", "2", "--decay-steps", "8")
    ck = tmp_path / "old"
    _write_old_layout(ck, src)
    (ck / "mine.txt").write_text("mine\n")
    user = snapshot(ck, skip=OWN)
    assert run_cli([*NP, "generate", "--checkpoint", ck, "--max-new-tokens", 5])[0] == 0
    assert load_checkpoint(ck).step == 4 and "save_id" not in load_checkpoint(ck).config
    code, _, err = run_cli([*NP, "train", "--resume", ck, "--data", data, "--steps", 4, "--max-new-tokens", 0])
    assert code == 0, err
    ck2 = load_checkpoint(ck)
    assert ck2.step == 8 and isinstance(ck2.config["save_id"], str) and _steps(ck) == [0, 2, 4, 6, 8]
    assert snapshot(ck, skip=OWN) == user


# -- readers never mix two saves ------------------------------------------------------------------------


def _state(k: int):
    W = np.full((4, 4), float(k), dtype=np.float32)  # (V,V): every number says which save it came from
    return {"token_embedding_table.weight": W, "adamw.exp_avg": W.copy(), "adamw.exp_avg_sq": W.copy(),
            "adamw.step": np.array(k, dtype=np.int64)}


def _writer(ck: Path, stop, saves) -> None:
    from bigram.core.checkpoint import save_checkpoint
    from bigram.core.tokenizer import CharTokenizer

    tok, k = CharTokenizer("abcd"), 1
    while not stop.is_set():
        k += 1
        save_checkpoint(ck, _state(k), tok, {})
        saves.value = k


def test_a_reader_never_mixes_two_saves(tmp_path):
    from bigram.core.checkpoint import save_checkpoint
    from bigram.core.tokenizer import CharTokenizer

    ck = tmp_path / "ck"
    save_checkpoint(ck, _state(1), CharTokenizer("abcd"), {})
    ctx = multiprocessing.get_context("fork")
    stop, saves = ctx.Event(), ctx.Value("q", 1)
    writer = ctx.Process(target=_writer, args=(ck, stop, saves))
    writer.start()
    loads, seen = 0, set()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline or saves.value < 30:
            c = load_checkpoint(ck)
            k = c.step
            assert c.config["step"] == k and all((a == k).all() for a in list(c.state.values())[:3]), \
                f"load {loads}: optimizer step {k}, config step {c.config['step']}, W {c.weights[0, 0]}"
            loads, seen = loads + 1, seen | {k}
            assert time.monotonic() < deadline + 30
    finally:
        stop.set()
        writer.join()
    assert writer.exitcode == 0 and loads > 30 and len(seen) > 10, (loads, len(seen), saves.value)


def test_a_save_killed_while_installing_is_read_from_its_stage_and_finished_by_the_next_run(tmp_path, data):
    """The state a kill -9 leaves between a save's commit point and its end, built by hand: DIR holds files of
    two saves, .bigram-save the complete new one. Readers take the new one; the next run installs it."""
    import shutil

    ck = train_checkpoint(tmp_path / "ck", data, "--steps", "4", "--decay-steps", "8")
    old = {p.name: p.read_bytes() for p in ck.iterdir()}
    assert run_cli([*NP, "train", "--resume", ck, "--data", data, "--steps", 2, "--max-new-tokens", 0])[0] == 0
    new = {p.name: p.read_bytes() for p in ck.iterdir()}
    from bigram.core.safefs import MARK, MARKER

    stage = ck / ".bigram-save"
    stage.mkdir()
    (stage / MARKER).write_bytes(MARK)  # a stage is a directory bigram made: it holds the marker
    for name in ("model.safetensors", "optimizer.safetensors", "config.json"):
        (stage / name).write_bytes(new[name])
        (ck / name).write_bytes((new if name == "model.safetensors" else old)[name])  # half installed
    assert load_checkpoint(ck).step == 6 and load_checkpoint(ck).config["step"] == 6
    assert run_cli([*NP, "generate", "--checkpoint", ck, "--max-new-tokens", 5])[0] == 0

    shutil.rmtree(stage)  # without the stage, the mix is detected, never loaded
    code, _, err = run_cli([*NP, "generate", "--checkpoint", ck, "--max-new-tokens", 5])
    assert code == 2 and "holds files of different saves" in message_lines(err)[0], err

    stage.mkdir()
    (stage / MARKER).write_bytes(MARK)
    for name in ("model.safetensors", "optimizer.safetensors", "config.json"):
        (stage / name).write_bytes(new[name])
    code, _, err = run_cli([*NP, "train", "--resume", ck, "--data", data, "--steps", 2, "--max-new-tokens", 0])
    assert code == 0 and "resuming" in err and "at step 6" in err, err
    assert not stage.exists() and load_checkpoint(ck).step == 8


def _names_like_bigrams_temporaries(ck: Path) -> list[Path]:
    """A user's entries named as bigram's temporaries are: a file, a link, a directory holding bigram's
    file names, a `.bigram-save` file beside a checkpoint."""
    (ck / ".bigram-tmp-notes").write_text("mine\n")
    (ck / ".bigram-tmp-1-abc").symlink_to("somewhere")
    d = ck / ".bigram-tmp-2-def"
    d.mkdir()
    (d / "config.json").write_text('{"mine": true}\n')
    (d / "model.safetensors").write_bytes(b"my weights")
    return [ck / ".bigram-tmp-notes", ck / ".bigram-tmp-1-abc", d]


def test_a_users_entries_named_like_bigrams_temporaries_are_never_swept(tmp_path, data):
    """Only a temporary directory bigram's marker proves its own is removed; anything else of such a name
    keeps its inode, bytes and contents through a fresh run, a resume and a save's cleanup."""
    ck = train_checkpoint(tmp_path / "ck", data)
    planted = _names_like_bigrams_temporaries(ck)
    before = snapshot(ck, skip=frozenset({"model.safetensors", "optimizer.safetensors", "config.json",
                                          "metrics.jsonl"}))
    assert run_cli(train_args(data, ck))[0] == 0
    assert run_cli([*NP, "train", "--resume", ck, "--data", data, "--steps", 2, "--max-new-tokens", 0])[0] == 0
    after = snapshot(ck, skip=frozenset({"model.safetensors", "optimizer.safetensors", "config.json",
                                         "metrics.jsonl"}))
    assert after == before and all(os.path.lexists(p) for p in planted)


def test_bigrams_own_leftovers_are_still_swept(tmp_path, data):
    """A save killed before its commit point leaves a marked temporary: the next run removes it."""
    from bigram.core.safefs import Dir, make_tmp_dir

    ck = train_checkpoint(tmp_path / "ck", data)
    with Dir.open(ck) as d:
        name = make_tmp_dir(d)
    (ck / name / "model.safetensors").write_bytes(b"half a save")
    assert run_cli(train_args(data, ck))[0] == 0
    assert not (ck / name).exists()


@pytest.mark.parametrize("kind", ["file", "empty dir", "dir"])
def test_a_users_bigram_save_is_neither_read_nor_replaced(kind, tmp_path, data):
    """`.bigram-save` is the name a save commits through: a user's entry of that name (no marker) is never
    read as a save, and a run into that directory is refused in one line before training, leaving it as it was."""
    ck = train_checkpoint(tmp_path / "ck", data)
    stage = ck / ".bigram-save"
    if kind == "file":
        stage.write_text("mine\n")
    else:
        stage.mkdir()
        if kind == "dir":  # a copy of another checkpoint, say
            for p in ck.iterdir():
                if p.is_file():
                    (stage / p.name).write_bytes(p.read_bytes()[:-1] + b" ")
    before = snapshot(ck)
    code, _, err = run_cli([*NP, "generate", "--checkpoint", ck, "--max-new-tokens", 5])
    assert code == 0, err
    code, _, err = run_cli(train_args(data, ck))
    lines = message_lines(err)
    assert code == 2 and len(lines) == 1 and ".bigram-save that bigram did not make" in lines[0], err
    assert "step 0" not in err and snapshot(ck) == before
