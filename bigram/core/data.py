"""Corpora: reading them, splits, batches. Tiny Shakespeare's download and cache: bigram.core.download."""

from __future__ import annotations

import hashlib
import mmap
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bigram.core.defaults import DEFAULT_VAL_FRACTION, TRAIN_FRACTION  # noqa: F401 (TRAIN_FRACTION: its old home)
from bigram.core.download import (  # noqa: F401  (cache_dir, sha256_file, TINY_SHAKESPEARE_*: their old home)
    TINY_SHAKESPEARE_NAME, TINY_SHAKESPEARE_SHA256, TINY_SHAKESPEARE_URL, cache_dir, download_tiny_shakespeare,
    sha256_file, tiny_shakespeare_path,
)
from bigram.core.errors import BigramError
from bigram.core.prepare import SPLIT_FILES, is_prepared, prepared_split, read_meta
from bigram.core.splits import split_point, val_fraction_for
from bigram.core.tokenizer import CharTokenizer, Tokenizer, tokenizer_from_json

COUNT_CHUNK = 1 << 20  # bigram_counts: tokens per chunk (8 MiB of int64 scratch, or V*V if larger)


def read_corpus(path: str | Path, flag: str = "--data") -> str:
    """Read a UTF-8 text file, with a one-line error for each way it can be wrong.

    `flag` is the option that named the file (--data, or --val-data for a validation file).
    """
    path = Path(path)
    what = "corpus" if flag == "--data" else f"{flag} file"
    if not path.exists():
        raise BigramError(f"{what} {path} does not exist; pass {flag} with the path of a UTF-8 text file")
    if path.is_dir():
        if flag != "--data":
            raise BigramError(f"{what} {path} is a directory; pass {flag} with a UTF-8 text file")
        raise BigramError(
            f"corpus {path} is a directory without vocab.json; pass --data with a UTF-8 text file "
            "or a directory made by `bigram data prepare FILE --out DIR`"
        )
    if not path.is_file():  # a FIFO would hang, /dev/zero or /dev/urandom would fill the memory
        raise BigramError(f"corpus {path} is not a regular file (a pipe, device or socket); "
                          "pass --data with a UTF-8 text file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise BigramError(f"cannot read {what} {path}: {e.strerror}; check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise BigramError(
            f"{what} {path} is not UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start} (line {line}); "
            "convert it to UTF-8 (e.g. iconv -t utf-8)"
        ) from None
    if not text:
        raise BigramError(f"{what} {path} is empty; pass {flag} with a non-empty text file")
    return text


def encode_val(tokenizer: Tokenizer, text: str, source: str) -> np.ndarray:
    """A separate validation text in the training vocabulary; characters it lacks are a one-line error."""
    bad = tokenizer.unknown_chars(text) if hasattr(tokenizer, "unknown_chars") else []
    if bad:
        from bigram.core.tokenizer import _show

        raise BigramError(
            f"--val-data {source} has {len(bad)} character(s) the training data lacks: {_show(bad)}; "
            "the vocabulary comes from --data, so remove them from the validation file or train on text that has them"
        )
    return tokenizer.encode(text)


@dataclass
class Corpus:
    """A tokenized text split into train and val: by default the first 90% and the last 10%.

    `val_fraction` is the share held out (0: no val split at all); a separate
    validation text (`val_data`) replaces the held-out split, and then the whole
    text trains. Build one with `Corpus.load(path)` or `Corpus.from_text(text)`.
    """

    tokenizer: Tokenizer
    train: np.ndarray  # (N_train,) token ids
    val: np.ndarray  # (N_val,) token ids
    sha256: str
    source: str
    val_fraction: float = DEFAULT_VAL_FRACTION  # share of the text held out; 0 with val_source or no val
    val_source: str | None = None  # the separate validation file, if any
    val_sha256: str | None = None

    @classmethod
    def from_text(cls, text: str, *, tokenizer: Tokenizer | None = None, source: str = "<text>",
                  val_fraction: float | None = None, val_text: str | None = None,
                  val_source: str = "<val text>") -> "Corpus":
        """Tokenize `text` (its own characters are the vocabulary unless `tokenizer` is given) and split it.

        val_fraction: the share held out as the val split (default 0.1; 0 for none).
        val_text: a separate validation text instead, encoded with the training vocabulary.
        """
        f = val_fraction_for(val_fraction, val_text is not None)
        tokenizer = tokenizer or CharTokenizer.from_text(text)
        data = tokenizer.encode(text)
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if val_text is not None:
            if not val_text:
                raise BigramError(f"--val-data {val_source} is empty; pass a non-empty validation text")
            val_sha = hashlib.sha256(val_text.encode("utf-8")).hexdigest()
            return cls(tokenizer, data, encode_val(tokenizer, val_text, val_source), sha, source, f, val_source, val_sha)
        n = split_point(len(data), f)  # the lecture's split: int(0.9*len(data))
        return cls(tokenizer, data[:n], data[n:], sha, source, f)

    @classmethod
    def load(cls, path: str | Path | None = None, *, tokenizer: Tokenizer | None = None,
             val_fraction: float | None = None, val_data: str | Path | None = None) -> "Corpus":
        """Load `path` (a text file or a `bigram data prepare` directory), or Tiny Shakespeare when None.

        val_fraction: the share held out (default 0.1, or what the directory was prepared with; 0: none).
        val_data: a separate validation text file, tokenized with the training vocabulary.
        """
        path = Path(path) if path is not None else tiny_shakespeare_path()
        if is_prepared(path):
            return cls.from_prepared(path, tokenizer=tokenizer, val_fraction=val_fraction, val_data=val_data)
        val_fraction_for(val_fraction, val_data is not None)  # a bad option fails before any reading
        val_text = read_corpus(val_data, "--val-data") if val_data is not None else None
        return cls.from_text(read_corpus(path), tokenizer=tokenizer, source=str(path), val_fraction=val_fraction,
                             val_text=val_text, val_source=str(val_data))

    @classmethod
    def from_prepared(cls, path: str | Path, *, tokenizer: Tokenizer | None = None,
                      val_fraction: float | None = None, val_data: str | Path | None = None) -> "Corpus":
        """Memory-map a prepared directory's train.bin and val.bin: nothing is read up front."""
        path = Path(path)
        meta = read_meta(path)
        tok = tokenizer_from_json(meta["tokenizer"])
        if tokenizer is not None and tokenizer.to_json() != tok.to_json():
            raise BigramError(
                f"{path} was prepared with another vocabulary ({tok!r}) than the one asked for ({tokenizer!r}); "
                "prepare the corpus again with the matching --tokenizer"
            )
        f, val_source, val_sha = prepared_split(path, meta, val_fraction, val_data)
        splits = {s: _memmap(path / name, meta["dtype"], meta[f"{s}_tokens"]) for s, name in SPLIT_FILES.items()}
        if val_data is not None and val_source is None:  # validate on another file than the prepared one
            text = read_corpus(val_data, "--val-data")
            splits["val"] = encode_val(tok, text, str(val_data))
            val_source, val_sha = str(val_data), hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(tok, splits["train"], splits["val"], meta["sha256"], str(path), f, val_source, val_sha)

    @property
    def has_val(self) -> bool:
        """Whether there is a val split (none with val_fraction 0 and no separate file)."""
        return self.val_source is not None or self.val_fraction > 0

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits this corpus has: ("train", "val"), or ("train",) without a val split."""
        return ("train", "val") if self.has_val else ("train",)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def split(self, name: str) -> np.ndarray:
        if name == "train":
            return self.train
        if name == "val":
            return self.val
        raise ValueError(f"unknown split {name!r}: use 'train' or 'val'")

    def check_block_size(self, block_size: int) -> None:
        """Each split needs at least one window of block_size + 1 tokens."""
        for name in self.splits:
            n = len(self.split(name))
            if n < block_size + 2:
                raise BigramError(
                    f"the {name} split has {n} tokens, too few for --block-size {block_size} "
                    f"(needs at least {block_size + 2}); use a longer corpus or a smaller --block-size"
                )

    def describe(self) -> str:
        """'vocab 65, 1,003,854 train / 111,540 val tokens', saying where val came from when not held out."""
        if not self.has_val:
            val = "no val split"
        elif self.val_source is not None:
            val = f"{len(self.val):,} val tokens from {self.val_source}"
        else:
            val = f"{len(self.val):,} val tokens"
        return f"vocab {self.tokenizer.vocab_size}, {len(self.train):,} train / {val}"

    def split_config(self) -> dict:
        """What a checkpoint records of the split, so eval and resume can use the same one."""
        out = {"val_fraction": self.val_fraction}
        if self.val_source is not None:
            out.update(val_source=self.val_source, val_sha256=self.val_sha256)
        return out

    def token_counts(self, pair_counts: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """(V,) int64: how often each token occurs in the text (--data; a separate val file is not counted).

        From the splits' (V,V) bigram counts when given (free: a row sum counts every
        token but the split's last), else by one pass over the tokens.
        """
        V = self.tokenizer.vocab_size
        total = np.zeros(V, dtype=np.int64)
        for s in ("train",) if self.val_source is not None else self.splits:
            tokens = self.split(s)
            if not len(tokens):
                continue
            if pair_counts is not None and s in pair_counts:
                total += pair_counts[s].sum(axis=1)
                total[int(tokens[-1])] += 1
            else:
                total += np.bincount(tokens, minlength=V)
        return total

    def record(self, pair_counts: dict[str, np.ndarray] | None = None) -> dict:
        """config.json's "corpus": its sha256 and source (reported, never opened), the split, token counts."""
        return {"sha256": self.sha256, "source": self.source, **self.split_config(),
                "token_counts": self.token_counts(pair_counts).tolist()}

    def __repr__(self) -> str:
        return f"Corpus({self.source!r}: {self.describe()})"

    def _repr_html_(self) -> str:
        from bigram.core.display import html_table

        rows = [["source", self.source], ["vocab size", self.tokenizer.vocab_size],
                ["train tokens", f"{len(self.train):,}"],
                ["val tokens", f"{len(self.val):,}" if self.has_val else "none (val_fraction 0)"]]
        if self.val_source is not None:
            rows.append(["val from", self.val_source])
        return html_table(["Corpus", ""], rows)


def _memmap(path: Path, dtype: str, n: int) -> np.ndarray:
    """A read-only (n,) memmap; an empty file cannot be mapped, so it becomes an empty array."""
    if n == 0:
        return np.zeros(0, dtype=dtype)
    from bigram.core.safefs import open_nofollow

    with open(path, "rb", opener=open_nofollow) as f:  # a link in a prepared directory is refused
        return np.memmap(f, dtype=dtype, mode="r", shape=(n,))


def release_pages(arr: np.ndarray) -> None:
    """Drop the pages of a memmap that this process has touched from its resident set.

    Pages of a mapped file count toward the process's RSS until unmapped, so
    sweeping a multi-GB token file would look like loading it. MADV_DONTNEED
    unmaps them (the kernel's page cache keeps them, a later read is a cheap
    minor fault). A no-op on ordinary arrays and where madvise is missing. Only
    a file-backed np.memmap qualifies: on anonymous memory (an encoded corpus,
    say) MADV_DONTNEED would not release pages but zero them.
    """
    base, file_backed = arr, False
    while base is not None and not isinstance(base, mmap.mmap):
        file_backed = file_backed or isinstance(base, np.memmap)
        base = getattr(base, "base", None)
    if file_backed and base is not None and hasattr(mmap, "MADV_DONTNEED") and not base.closed:
        base.madvise(mmap.MADV_DONTNEED)


def _open_whole_file(data: np.ndarray) -> int | None:
    """A read-only fd on the file behind `data` when it is a whole-file memmap (else None)."""
    if not isinstance(data, np.memmap) or not hasattr(os, "pread") or not data.filename:
        return None
    if data.offset != 0 or data.nbytes != os.path.getsize(data.filename) or not data.flags.c_contiguous:
        return None  # a slice or view: its first token is not the file's first
    from bigram.core.safefs import open_nofollow

    return open_nofollow(data.filename)


class Batcher:
    """Random (B,T) windows of a split, `y` being `x` shifted by one.

    Offsets come from a seeded PCG64 stream as floor(u * n_windows) with one
    uniform u per row. Each u costs exactly one 64-bit draw, so drawing k
    steps at once gives the same offsets as k single steps, and the state is
    just the generator's state (saved with checkpoints for exact resume).
    """

    def __init__(self, data: np.ndarray, batch_size: int, block_size: int, seed: int):
        if len(data) < block_size + 1:
            raise BigramError(
                f"split has {len(data)} tokens, fewer than --block-size + 1 = {block_size + 1}; "
                "use a longer corpus or a smaller --block-size"
            )
        self.data = data
        self.batch_size = batch_size
        self.block_size = block_size
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self._arange = np.arange(block_size + 1)  # (T+1,)
        self._fd = _open_whole_file(data)  # a prepared split: windows are read with pread
        if self._fd is not None:
            weakref.finalize(self, os.close, self._fd)

    @property
    def n_windows(self) -> int:
        """Valid window starts: 0 .. len(data) - T - 1, so y never reads past the end."""
        return len(self.data) - self.block_size

    def offsets(self, steps: int | None = None) -> np.ndarray:
        """Window starts for one step (B,), or for `steps` steps at once (steps, B)."""
        shape = (self.batch_size,) if steps is None else (steps, self.batch_size)
        return (self.rng.random(shape) * self.n_windows).astype(np.int64)

    def windows(self, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gather (..., T) inputs and targets for the given window starts."""
        if self._fd is not None:
            win = self._pread_windows(offsets)  # (..., T+1)
        else:
            win = self.data[offsets[..., None] + self._arange]  # (..., T+1)
        return win[..., :-1], win[..., 1:]

    def _pread_windows(self, offsets: np.ndarray) -> np.ndarray:
        """The same windows, read from the file: a random read through a memmap maps a whole
        page-cache folio (up to 2 MiB on Linux 6.x), so gathering through the mapping would
        soon hold the whole split in RSS; pread copies just T+1 tokens per row."""
        n, item = self.block_size + 1, self.data.itemsize
        buf = b"".join([os.pread(self._fd, n * item, int(o) * item) for o in offsets.reshape(-1)])
        return np.frombuffer(bytearray(buf), dtype=self.data.dtype).reshape(*offsets.shape, n)

    def get_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """One batch: x (B,T) and y (B,T) with y[:, t] = x[:, t+1]'s successor."""
        return self.windows(self.offsets())

    def get_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def check_ids(ids: np.ndarray, vocab_size: int, offset: int | None = None) -> None:
    """Every id below vocab_size: a damaged token file is a one-line error, not an IndexError deep inside.

    `offset`: where `ids` starts in its split, to name the bad id's position.
    """
    if ids.size and int(ids.max()) >= vocab_size:
        i = int(np.argmax(ids.reshape(-1) >= vocab_size))
        where = f" at position {offset + i}" if offset is not None else ""
        raise BigramError(
            f"the token data holds id {int(ids.reshape(-1)[i])}{where}, beyond the vocabulary's {vocab_size} ids, "
            "so the prepared directory is damaged; run `bigram data prepare FILE --out DIR` again"
        )


def bigram_counts(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """C[i, j] = how often token j follows token i in `tokens`. (V,V) int64.

    This is data statistics, not model math: the exact loss of any table over
    a split, and its gradient, depend on the split only through these counts.
    """
    V = vocab_size
    counts = np.zeros(V * V, dtype=np.int64)
    step = max(COUNT_CHUNK, V * V)  # bounded scratch memory; bincount's (V*V,) output dominates for large V
    for start in range(0, max(len(tokens) - 1, 0), step):
        stop = min(start + step, len(tokens) - 1)
        check_ids(tokens[start : stop + 1], V, start)
        a = tokens[start:stop].astype(np.int64)
        a *= V  # in place: one int64 scratch array per chunk
        a += tokens[start + 1 : stop + 1]
        counts += np.bincount(a, minlength=V * V)
        release_pages(tokens)  # a memmapped split is swept once; keep it out of the RSS
    return counts.reshape(V, V)
