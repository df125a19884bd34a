"""`bigram data prepare`: a corpus of any size to nanoGPT-style token files.

    DIR/train.bin   the first int((1 - F) * N) token ids, raw, in the vocab's dtype (F = --val-fraction, 0.1)
    DIR/val.bin     the remaining ids, or a separate --val-data file's in the same vocabulary
    DIR/vocab.json  tokenizer, dtype, token counts, corpus sha256, the split (written last)

The file is read twice in fixed-size byte chunks (vocabulary scan, then
encoding), so memory stays bounded whatever the corpus size. An incremental
UTF-8 decoder carries a character split across two chunks over to the next.
The split and the ids equal Corpus.from_text's on the same file exactly.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from bigram.core.defaults import DEFAULT_VAL_FRACTION
from bigram.core.errors import BigramError
from bigram.core.safefs import (
    Dir, busy, leftover, link_error, lock, make_tmp_dir, read_nofollow, remove_tmp_dir, sweep,
)
from bigram.core.splits import check_val_fraction, split_point, val_fraction_for
from bigram.core.tokenizer import TOKENIZERS, CharTokenizer, Tokenizer, _codepoints, token_dtype, tokenizer_from_json

VOCAB_FILE = "vocab.json"
SPLIT_FILES = {"train": "train.bin", "val": "val.bin"}
FORMAT = "bigram-tokens"
FORMAT_VERSION = 1
UNFINISHED = {"format": FORMAT, "format_version": FORMAT_VERSION, "unfinished": True}  # vocab.json mid-prepare
CHUNK_BYTES = 1 << 20  # 1 MiB of text per read: a few MiB of UTF-32 and id scratch


@dataclass
class ScanResult:
    n_tokens: int
    n_bytes: int
    sha256: str
    tokenizer: Tokenizer


def iter_text(path: Path, chunk_bytes: int = CHUNK_BYTES, on_bytes: Callable[[int], None] | None = None,
              hasher=None) -> Iterator[str]:
    """Decoded text of `path`, chunk by chunk; a one-line error at the first invalid byte.

    `hasher` (a hashlib object) sees the raw bytes, so pass 1 hashes while it scans.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    pos = 0  # bytes read so far
    with open(path, "rb") as f:
        while True:
            raw = f.read(chunk_bytes)
            pending = len(decoder.getstate()[0])  # bytes of a split character held from the last chunk
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                off = pos - pending + e.start
                raise BigramError(
                    f"corpus {path} is not UTF-8: invalid byte at offset {off}; convert it to UTF-8 (e.g. iconv -t utf-8)"
                ) from None
            pos += len(raw)
            if hasher is not None:
                hasher.update(raw)
            if on_bytes is not None and raw:
                on_bytes(len(raw))
            if text:
                yield text
            if not raw:
                return


def scan(path: Path, kind: str = "char", chunk_bytes: int = CHUNK_BYTES, on_bytes=None) -> ScanResult:
    """Pass 1: sha256, token count and (for 'char') the sorted set of characters."""
    h = hashlib.sha256()
    seen = np.zeros(0, dtype=np.uint32)  # code points met so far, sorted
    n_chars = 0
    for text in iter_text(path, chunk_bytes, on_bytes, hasher=h):
        n_chars += len(text)
        if kind == "char":
            seen = np.union1d(seen, np.unique(_codepoints(text)))
    n_bytes = path.stat().st_size
    if kind == "char":
        if n_chars == 0:
            raise BigramError(f"corpus {path} is empty; pass a non-empty UTF-8 text file")
        tok: Tokenizer = CharTokenizer(chr(int(cp)) for cp in seen)
        return ScanResult(n_chars, n_bytes, h.hexdigest(), tok)
    if n_bytes == 0:
        raise BigramError(f"corpus {path} is empty; pass a non-empty UTF-8 text file")
    return ScanResult(n_bytes, n_bytes, h.hexdigest(), TOKENIZERS[kind]())


def encode_to_files(path: Path, out: Path, scan_res: ScanResult, chunk_bytes: int = CHUNK_BYTES, on_bytes=None,
                    val_fraction: float = DEFAULT_VAL_FRACTION, val_path: Path | None = None) -> dict:
    """Pass 2: encode chunk by chunk into train.bin then val.bin; returns per-split token counts.

    With `val_path`, the whole corpus goes to train.bin and val.bin holds val_path's text.
    """
    tok = scan_res.tokenizer
    n_train = scan_res.n_tokens if val_path is not None else split_point(scan_res.n_tokens, val_fraction)
    freq = np.zeros(tok.vocab_size, dtype=np.int64)  # unigram counts, for vocab.json
    written = {"train": 0, "val": 0}
    with Dir.open(out) as d:
        tmp = make_tmp_dir(d)  # marked as bigram's: a killed prepare's is swept by the next one
        try:
            with d.sub(tmp) as t:
                files = [os.fdopen(t.open_fd(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb")
                         for name in SPLIT_FILES.values()]
                with files[0] as ftrain, files[1] as fval:
                    for text in iter_text(path, chunk_bytes, on_bytes):
                        ids = tok.encode(text)  # (n,) in the vocab's dtype
                        freq += np.bincount(ids, minlength=tok.vocab_size)
                        k = max(0, min(len(ids), n_train - written["train"]))  # how many still belong to train
                        ftrain.write(ids[:k].tobytes())
                        fval.write(ids[k:].tobytes())
                        written["train"] += k
                        written["val"] += len(ids) - k
                    if written["train"] + written["val"] != scan_res.n_tokens:
                        raise BigramError(f"corpus {path} changed while it was being prepared; "
                                          "run `bigram data prepare` again")
                    for text in (iter_text(val_path, chunk_bytes, on_bytes) if val_path is not None else ()):
                        ids = tok.encode(text)  # the scan checked that every character is in the vocabulary
                        freq += np.bincount(ids, minlength=tok.vocab_size)
                        fval.write(ids.tobytes())
                        written["val"] += len(ids)
                    for f in (ftrain, fval):
                        f.flush()
                        os.fsync(f.fileno())
                for name in SPLIT_FILES.values():
                    d.install(t, name)  # renamed over DIR/name: a reader sees the old file or the new
            d.sync()  # the renames are durable
        finally:
            remove_tmp_dir(d, tmp, tuple(SPLIT_FILES.values()))
    return {**written, "freq": freq}


def scan_val(val_path: Path, tok: Tokenizer, kind: str, chunk_bytes: int, on_bytes=None) -> ScanResult:
    """Pass 1 over a separate validation file: its characters must all be in the training vocabulary."""
    if not val_path.is_file():
        raise BigramError(f"--val-data {val_path} is not a file; pass the path of a UTF-8 text file")
    res = scan(val_path, kind, chunk_bytes, on_bytes)
    if kind == "char":
        bad = sorted(set(res.tokenizer.chars) - set(tok.chars))
        if bad:
            from bigram.core.tokenizer import _show

            raise BigramError(
                f"--val-data {val_path} has {len(bad)} character(s) the training data lacks: {_show(bad)}; "
                "the vocabulary comes from the corpus, so remove them from the validation file or prepare text that has them"
            )
    return res


def prepare(path: str | Path, out: str | Path, *, kind: str = "char", chunk_bytes: int = CHUNK_BYTES,
            on_bytes: Callable[[int], None] | None = None, val_fraction: float | None = None,
            val_data: str | Path | None = None) -> dict:
    """Stream `path` into DIR/{train,val}.bin and DIR/vocab.json; returns vocab.json's content.

    val_fraction: the share held out as val.bin (default 0.1; 0: none).
    val_data: a separate validation file for val.bin instead; the whole corpus then trains.
    """
    path, out = Path(path), Path(out)
    val_path = Path(val_data) if val_data is not None else None
    f = val_fraction_for(val_fraction, val_path is not None)
    if kind not in TOKENIZERS:
        raise BigramError(f"unknown tokenizer {kind!r}; use one of {', '.join(TOKENIZERS)}")
    if not path.is_file():
        raise BigramError(f"corpus {path} is not a file; pass the path of a UTF-8 text file")
    _check_out(out)
    res = scan(path, kind, chunk_bytes, on_bytes)
    val_res = scan_val(val_path, res.tokenizer, kind, chunk_bytes, on_bytes) if val_path is not None else None
    out.mkdir(parents=True, exist_ok=True)
    with Dir.open(out) as held:  # one prepare at a time into DIR: the lock lasts until vocab.json is written
        lock(held, busy(out))
        _check_out(out, held)  # again, under the lock
        sweep(held, tuple(SPLIT_FILES.values()))  # a killed prepare's temporaries
        # a half-rewritten directory must not look complete, yet must stay provably ours: a prepare killed
        # from here on leaves this index, so the next prepare into DIR goes ahead (the user's files kept)
        held.replace(VOCAB_FILE, (json.dumps(UNFINISHED) + "\n").encode())
        counts = encode_to_files(path, out, res, chunk_bytes, on_bytes, f, val_path)
        meta = _meta(path, res, counts, f, val_path, val_res)
        held.replace(VOCAB_FILE, (json.dumps(meta) + "\n").encode())  # last: the directory is complete
    return meta


def _meta(path: Path, res: ScanResult, counts: dict, f: float, val_path: Path | None,
          val_res: ScanResult | None) -> dict:
    """vocab.json's content."""
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "tokenizer": res.tokenizer.to_json(),
        "vocab_size": res.tokenizer.vocab_size, "dtype": token_dtype(res.tokenizer.vocab_size).name,
        "train_tokens": counts["train"], "val_tokens": counts["val"], "train_fraction": 1 - f,
        "val_fraction": f, "token_counts": counts["freq"].tolist(), "sha256": res.sha256, "bytes": res.n_bytes,
        "source": str(path),
    }
    if val_res is not None:
        meta.update(val_source=str(val_path), val_sha256=val_res.sha256)
    return meta


def _check_out(out: Path, held: Dir | None = None) -> None:
    """--out may be new, empty, or a directory this command prepared; anything else is the user's.

    `held`: DIR, opened and locked by this prepare. Without it, DIR is locked for the look, so a
    prepare midway (its token files in, its vocab.json not yet) is reported as such, never as foreign.
    """
    if out.exists() and not out.is_dir():
        raise BigramError(f"--out {out} exists and is not a directory; choose another --out")
    if not out.is_dir():
        return
    if held is None:
        with Dir.open(out) as d:
            lock(d, busy(out))
            return _check_out(out, d)
    names = {n for n in held.names() if not leftover(held, n)}  # a killed prepare's temporaries are bigram's
    if names <= {f".{n}.tmp" for n in SPLIT_FILES.values()} or _is_token_index(out / VOCAB_FILE):
        return  # only our names are ever replaced; anything else in a prepared directory is left alone
    # train.bin/val.bin without our vocab.json may be another tool's (nanoGPT's): never replaced
    raise BigramError(f"--out {out} is a non-empty directory that `bigram data prepare` did not write "
                      f"(it holds {', '.join(sorted(names)[:3])}{', ...' if len(names) > 3 else ''}); "
                      "choose a new or empty directory (a prepare killed midway leaves no vocab.json: delete it)")


def _is_token_index(path: Path) -> bool:
    try:
        meta = json.loads(read_nofollow(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def is_prepared(path: Path) -> bool:
    return path.is_dir() and os.path.lexists(path / VOCAB_FILE)  # a linked vocab.json is refused by read_meta


def read_meta(path: Path) -> dict:
    """vocab.json of a prepared directory, checked field by field and against the sizes of its token files."""
    hint = f"run `bigram data prepare FILE --out {path}` again"
    try:
        meta = json.loads(read_nofollow(path / VOCAB_FILE).decode("utf-8"))  # a link there is refused
    except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: bad JSON, or ints past the digit limit
        raise BigramError(f"{path / VOCAB_FILE} is unreadable ({e}); {hint}") from None
    except RecursionError:
        raise BigramError(f"{path / VOCAB_FILE} is unreadable (its JSON is nested too deeply); {hint}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BigramError(f"{path / VOCAB_FILE} is not a bigram token-file index; {hint}")
    if meta.get("unfinished"):
        raise BigramError(f"{path} is being prepared, or its `bigram data prepare` was stopped midway; wait for it "
                          f"to finish, or {hint}")
    _check_meta(meta, path / VOCAB_FILE, hint)
    item = np.dtype(meta["dtype"]).itemsize
    for split, name in SPLIT_FILES.items():
        f = path / name
        want = meta[f"{split}_tokens"] * item
        if f.is_symlink():
            raise link_error(f)
        if not f.is_file() or f.stat().st_size != want:
            raise BigramError(f"{f} is missing or not {want} bytes as {VOCAB_FILE} says; {hint}")
    return meta


def prepared_split(path: Path, meta: dict, val_fraction: float | None, val_data) -> tuple[float, str | None, str | None]:
    """(val_fraction, val_source, val_sha256) of a prepared directory, checked against what was asked.

    The split is fixed when the directory is prepared: asking for another
    --val-fraction is an error, and --val-data is accepted only where the
    directory holds no val split of its own (prepared with --val-fraction 0).
    """
    stored = meta.get("val_fraction", DEFAULT_VAL_FRACTION)  # directories from before the option: 0.1
    source = meta.get("val_source")
    redo = f"prepare it again with `bigram data prepare FILE --out {path}"
    if val_data is not None:
        val_fraction_for(val_fraction, True)
        if meta["val_tokens"] > 0:
            raise BigramError(f"{path} has its own val split ({meta['val_tokens']:,} tokens in val.bin), so --val-data "
                              f"would replace it; drop --val-data, or {redo} --val-data FILE` (or --val-fraction 0)")
        return 0.0, None, None
    if val_fraction is not None and (source is not None or check_val_fraction(val_fraction) != stored):
        was = f"--val-data {source}" if source is not None else f"--val-fraction {stored:g}"
        raise BigramError(f"{path} was prepared with {was}, and its split is fixed; drop --val-fraction, "
                          f"or {redo} --val-fraction {val_fraction:g}`")
    return stored, source, meta.get("val_sha256")


TOKEN_DTYPES = ("uint8", "uint16", "uint32")  # what token_dtype() writes


def _check_meta(meta: dict, where: Path, hint: str) -> None:
    """The fields a reader uses, each of the type and range prepare() writes: a tampered
    vocab.json is a one-line error, never a crash (or wrong ids) later on."""
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise BigramError(f"{where} has no integer format_version; {hint}")
    if version > FORMAT_VERSION:
        raise BigramError(f"{where} has a newer format than this bigram reads; upgrade bigram")
    try:
        V = tokenizer_from_json(meta.get("tokenizer")).vocab_size
    except (ValueError, TypeError, BigramError) as e:
        raise BigramError(f"{where} has an invalid tokenizer ({e}); {hint}") from None
    if meta.get("vocab_size", V) != V:
        raise BigramError(f"{where} says vocab_size {meta.get('vocab_size')!r} but its tokenizer has {V}; {hint}")
    dtype = meta.get("dtype")
    if dtype not in TOKEN_DTYPES or np.dtype(dtype).itemsize < token_dtype(V).itemsize:
        raise BigramError(f"{where} has dtype {dtype!r}; token ids of a {V}-id vocabulary need "
                          f"{token_dtype(V).name} (or a wider one of {', '.join(TOKEN_DTYPES)}); {hint}")
    for key in ("train_tokens", "val_tokens"):
        if type(meta.get(key)) is not int or meta[key] < 0:
            raise BigramError(f"{where} has no whole-number {key}; {hint}")
    if not isinstance(meta.get("sha256"), str):
        raise BigramError(f"{where} has no sha256 of its corpus; {hint}")
    fraction = meta.get("val_fraction", DEFAULT_VAL_FRACTION)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise BigramError(f"{where} has val_fraction {fraction!r}, not a number from 0 up to 1; {hint}")
    for key in ("val_source", "val_sha256"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise BigramError(f"{where}: {key} must be a string or null; {hint}")
