"""`bigram data prepare`: streamed token files equal Corpus.from_text exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clirun import run_cli

from bigram.core.data import Batcher, Corpus, bigram_counts, release_pages
from bigram.core.errors import BigramError
from bigram.core.prepare import prepare
from bigram.core.tokenizer import ByteTokenizer, CharTokenizer, tokenizer_from_json


def test_prepare_equals_from_text_on_shakespeare(shakespeare_path, shakespeare, tmp_path):
    meta = prepare(shakespeare_path, tmp_path, chunk_bytes=65_537)  # odd size: chunk edges fall mid-line
    assert (meta["train_tokens"], meta["val_tokens"], meta["vocab_size"]) == (1_003_854, 111_540, 65)
    assert meta["dtype"] == "uint8" and meta["sha256"] == shakespeare.sha256
    c = Corpus.load(tmp_path)
    assert isinstance(c.train, np.memmap) and isinstance(c.val, np.memmap)
    assert c.tokenizer == shakespeare.tokenizer
    assert np.array_equal(c.train, shakespeare.train) and np.array_equal(c.val, shakespeare.val)
    assert sum(meta["token_counts"]) == 1_003_854 + 111_540
    V = c.tokenizer.vocab_size
    assert np.array_equal(bigram_counts(c.train, V), bigram_counts(shakespeare.train, V))


# Multi-byte characters (2, 3 and 4 bytes in UTF-8) with tiny chunks: every split point is exercised.
_text = st.text(alphabet=st.sampled_from(list("ab \n") + ["é", "ж", "€", "😀"]), min_size=1, max_size=60)


@given(text=_text, chunk=st.integers(1, 7), kind=st.sampled_from(["char", "byte"]))
def test_prepare_any_chunking_equals_from_text(tmp_path_factory, text, chunk, kind):
    d = tmp_path_factory.mktemp("p")
    src = d / "in.txt"
    src.write_bytes(text.encode("utf-8"))
    prepare(src, d / "out", kind=kind, chunk_bytes=chunk)
    ref = Corpus.from_text(text, tokenizer=ByteTokenizer() if kind == "byte" else None)
    got = Corpus.load(d / "out")
    assert got.tokenizer == ref.tokenizer and got.sha256 == ref.sha256
    assert np.array_equal(got.train, ref.train) and np.array_equal(got.val, ref.val)
    assert got.train.dtype == ref.train.dtype


def test_wide_vocab_is_uint16(tmp_path):
    text = "".join(chr(0x4E00 + i) for i in range(300)) * 3  # 300 distinct CJK characters
    (tmp_path / "cjk.txt").write_text(text, encoding="utf-8")
    meta = prepare(tmp_path / "cjk.txt", tmp_path / "o")
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == 300
    assert np.array_equal(Corpus.load(tmp_path / "o").train, Corpus.from_text(text).train)


def test_invalid_utf8_names_the_offset(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"hello \xc3\xa9 \xff world")
    with pytest.raises(BigramError, match="offset 9"):
        prepare(tmp_path / "bad.txt", tmp_path / "o", chunk_bytes=3)
    (tmp_path / "cut.txt").write_bytes(b"ends mid-char \xe2\x82")
    with pytest.raises(BigramError, match="not UTF-8"):
        prepare(tmp_path / "cut.txt", tmp_path / "o")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(BigramError, match="empty"):
        prepare(tmp_path / "empty.txt", tmp_path / "o")


def test_byte_tokenizer_round_trips_any_text():
    tok = ByteTokenizer()
    text = "naïve 😀 text\n"
    ids = tok.encode(text)
    assert tok.vocab_size == 256 and ids.dtype == np.uint8 and len(ids) == len(text.encode())
    assert tok.decode(ids) == text and tok.unknown_chars("\u2603") == []
    assert tok.decode(tok.encode("ok 😀")[:-2]) == "ok \ufffd"  # a cut character decodes, replaced
    assert tokenizer_from_json(json.loads(json.dumps(tok.to_json()))) == tok
    assert tokenizer_from_json(CharTokenizer("ab").to_json()) == CharTokenizer("ab")


def test_load_rejects_mismatched_tokenizer_and_broken_dirs(tmp_path, shakespeare_path):
    prepare(shakespeare_path, tmp_path / "o", kind="byte")
    with pytest.raises(BigramError, match="another vocabulary"):
        Corpus.load(tmp_path / "o", tokenizer=CharTokenizer("ab"))
    (tmp_path / "o" / "val.bin").write_bytes(b"xx")  # truncated
    with pytest.raises(BigramError, match="val.bin is missing or not"):
        Corpus.load(tmp_path / "o")


def test_cli_prepare_then_train_on_the_directory(tmp_path, shakespeare_path):
    small = tmp_path / "small.txt"
    small.write_bytes(shakespeare_path.read_bytes()[:20_000])
    code, out, _ = run_cli(["data", "prepare", str(small), "--out", str(tmp_path / "d"), "--json"])
    assert code == 0
    summary = json.loads(out)
    assert summary["train_tokens"] == 18_000 and "token_counts" not in summary
    rc = run_cli(["--backend", "numpy", "train", "--data", str(tmp_path / "d"), "--steps", "20",
                  "--max-new-tokens", "0", "--json", "--out", str(tmp_path / "ck")])[0]
    assert rc == 0
    ref = Corpus.load(small)
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert cfg["corpus"]["sha256"] == ref.sha256 and cfg["tokenizer"] == ref.tokenizer.to_json()
    assert run_cli(["data", "prepare", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "d")])[0] == 2
    rc = run_cli(["--backend", "numpy", "train", "--data", str(small), "--tokenizer", "byte", "--steps", "5",
                  "--max-new-tokens", "20", "--out", str(tmp_path / "ckb")])[0]
    assert rc == 0 and json.loads((tmp_path / "ckb" / "config.json").read_text())["tokenizer"] == {"kind": "byte"}
    code, out, _ = run_cli(["vocab", "--checkpoint", str(tmp_path / "ckb")])
    assert code == 0 and out.splitlines()[-1].split() == ["255", "\\xff", "0"]  # id, byte, count in the text
    assert run_cli(["--backend", "numpy", "train", "--data", str(small), "--tokenizer", "bpe"])[0] == 2


def _rss_file_kb() -> int | None:
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    return None


@pytest.mark.skipif(_rss_file_kb() is None, reason="needs Linux /proc/self/status (RssFile)")
def test_release_pages_keeps_a_swept_memmap_out_of_rss(tmp_path):
    path = tmp_path / "big.bin"
    np.arange(32 << 20, dtype=np.uint64).astype(np.uint8).tofile(path)  # 32 MiB
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    before = _rss_file_kb()
    total = int(mm[::4096].sum())  # touch every page
    touched = _rss_file_kb()
    release_pages(mm)
    after = _rss_file_kb()
    assert total >= 0 and touched - before > 16 << 10  # > 16 MiB became resident
    assert after - before < 4 << 10  # and left again
    assert int(mm[::4096].sum()) == total  # the mapping still reads the same bytes


def test_release_pages_never_touches_anonymous_memory():
    """An array over an anonymous mapping (as encode returns) keeps its data: DONTNEED there would zero it."""
    import mmap

    buf = mmap.mmap(-1, 1 << 16)
    direct = np.ndarray((1 << 16,), dtype=np.uint8, buffer=buf)  # .base is the mmap itself
    direct[:] = 7
    release_pages(direct)
    release_pages(direct[100:200])
    assert (direct == 7).all()


def test_batcher_on_memmap_draws_the_same_batches(tmp_path, shakespeare):
    path = tmp_path / "t.bin"
    shakespeare.train.tofile(path)
    mm = np.memmap(path, dtype=shakespeare.train.dtype, mode="r")
    a, b = Batcher(shakespeare.train, 32, 8, 7), Batcher(mm, 32, 8, 7)
    assert b._fd is not None and a._fd is None  # the whole-file memmap is read with pread
    for _ in range(40):
        xa, ya = a.get_batch()
        xb, yb = b.get_batch()
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def _entries(d: Path) -> dict[str, tuple]:
    return {p.name: (p.lstat().st_ino, p.lstat().st_nlink, p.read_bytes()) for p in d.iterdir()}


def test_prepare_refuses_a_directory_it_did_not_write(tmp_path):
    """A nanoGPT data folder (train.bin, meta.pkl, ...) is the user's: refused, every file untouched."""
    (tmp_path / "c.txt").write_text("hello world\n" * 50)
    d = tmp_path / "nanogpt"
    d.mkdir()
    for name, data in {"train.bin": b"\x01\x02", "val.bin": b"\x03", "meta.pkl": b"pickle", "input.txt": b"x"}.items():
        (d / name).write_bytes(data)
    before = _entries(d)
    code, _, err = run_cli(["data", "prepare", tmp_path / "c.txt", "--out", d])
    assert code == 2 and "did not write" in err and "meta.pkl" in err and len(err.splitlines()) == 1
    assert _entries(d) == before


def test_prepare_again_keeps_the_users_files_beside_its_own(tmp_path):
    (tmp_path / "c.txt").write_text("hello world\n" * 50)
    d = tmp_path / "p"
    assert run_cli(["data", "prepare", tmp_path / "c.txt", "--out", d])[0] == 0
    (d / "notes.md").write_text("mine")
    keep = (d / "notes.md").stat().st_ino
    (tmp_path / "c.txt").write_text("goodbye moon\n" * 40)
    assert run_cli(["data", "prepare", tmp_path / "c.txt", "--out", d])[0] == 0
    assert (d / "notes.md").read_text() == "mine" and (d / "notes.md").stat().st_ino == keep
    assert Corpus.load(d).tokenizer == CharTokenizer(sorted(set("goodbye moon\n")))


def test_a_prepare_into_a_directory_another_prepare_holds_is_one_line(tmp_path):
    """Another `data prepare` holds DIR's lock: refused in one line, DIR untouched."""
    import fcntl
    import os

    (tmp_path / "c.txt").write_text("hello world\n" * 50)
    d = tmp_path / "p"
    assert run_cli(["data", "prepare", tmp_path / "c.txt", "--out", d])[0] == 0
    before = _entries(d)
    fd = os.open(d, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running prepare holds it
        code, _, err = run_cli(["data", "prepare", tmp_path / "c.txt", "--out", d])
    finally:
        os.close(fd)
    assert code == 2 and len(err.splitlines()) == 1 and "being written by another bigram command" in err, err
    assert _entries(d) == before


def _prepare_child(corpus, out, go, codes, i):
    go.wait()
    code, _, err = run_cli(["data", "prepare", corpus, "--out", out])
    codes[i] = code
    if code != 0:
        Path(f"{out}.err{i}").write_text(err)


def test_two_prepares_at_once_leave_one_complete_directory(tmp_path, shakespeare_path):
    """Two prepares of different corpora into one --out, started together: each one ends either done or
    refused in one line, and DIR holds exactly one corpus' files, consistent with its vocab.json."""
    import multiprocessing

    from bigram.core.prepare import read_meta

    texts = {"a": Path(shakespeare_path).read_text(encoding="utf-8")[:400_000]}
    texts["b"] = texts["a"].upper()
    for name, text in texts.items():
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    out = tmp_path / "p"
    ctx = multiprocessing.get_context("fork")
    go, codes = ctx.Event(), ctx.Array("i", [-1, -1])
    kids = [ctx.Process(target=_prepare_child, args=(tmp_path / f"{n}.txt", out, go, codes, i))
            for i, n in enumerate(texts)]
    for k in kids:
        k.start()
    go.set()
    for k in kids:
        k.join(120)
    assert all(c in (0, 2) for c in codes) and 0 in codes, list(codes)
    for i, c in enumerate(codes):
        if c == 2:
            assert "being written by another bigram command" in Path(f"{out}.err{i}").read_text()
    meta = read_meta(out)  # sizes match vocab.json
    which = next(n for n, t in texts.items() if meta["source"].endswith(f"{n}.txt"))
    assert Corpus.load(out).train.tolist() == Corpus.from_text(texts[which]).train.tolist()
    assert sorted(p.name for p in out.iterdir()) == ["train.bin", "val.bin", "vocab.json"]


def test_leftovers_and_a_users_files_named_like_them(tmp_path):
    """A killed prepare's marked temporary is swept; a user's `.train.bin.tmp` or `.bigram-tmp-*` is not."""
    from bigram.core.safefs import Dir, make_tmp_dir

    (tmp_path / "c.txt").write_text("hello world\n" * 50)
    d = tmp_path / "p"
    assert run_cli(["data", "prepare", tmp_path / "c.txt", "--out", d])[0] == 0
    with Dir.open(d) as held:
        killed = make_tmp_dir(held)
    (d / killed / "train.bin").write_bytes(b"\0" * 100)
    for name in (".train.bin.tmp", ".bigram-tmp-notes"):
        (d / name).write_text("mine\n")
    names = (".train.bin.tmp", ".bigram-tmp-notes")
    mine = {n: ((d / n).stat().st_ino, (d / n).read_bytes()) for n in names}
    assert run_cli(["data", "prepare", tmp_path / "c.txt", "--out", d])[0] == 0
    assert not (d / killed).exists()
    assert {n: ((d / n).stat().st_ino, (d / n).read_bytes()) for n in names} == mine
