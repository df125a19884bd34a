"""Tokenizers: text <-> integer ids, vectorized, never a per-character loop."""

from __future__ import annotations

import json
import mmap
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Protocol, runtime_checkable

import numpy as np

from bigram.core.errors import BigramError

# Encoding works on chunks of this many characters so that a 100 MB corpus
# never needs its whole UTF-32 copy (4 bytes/char) in memory at once.
_CHUNK = 1 << 22
_BYTE_CHUNK = 1 << 18  # the Latin-1 path's chunks stay in cache: 3 passes, no UTF-32 copy
_PREFAULT_BYTES = 1 << 23  # outputs from 8 MiB up are mapped with their pages already in place
_PARALLEL_CHARS = 1 << 23  # texts from 8 M characters up are encoded on several threads
_MAX_THREADS = 4  # beyond a few, the encode is bound by memory, not by cores


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id of this vocabulary."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _new_ids(n: int, dtype: np.dtype) -> np.ndarray:
    """np.empty(n, dtype), but a large one comes with its pages already mapped.

    A fresh 100 MB array is paid for page by page at first write: on a VM each
    fault costs microseconds, and with transparent huge pages a fault may first
    compact memory. That cost rivals the encoding itself (100-300 ms of ~400).
    MAP_POPULATE maps every page in one system call (~50 ms for 100 MB here).
    Where there is no MAP_POPULATE (not Linux), or mapping fails, np.empty.
    """
    nbytes = n * dtype.itemsize
    if nbytes >= _PREFAULT_BYTES and hasattr(mmap, "MAP_POPULATE"):
        try:
            buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
        except (OSError, ValueError):
            return np.empty(n, dtype=dtype)
        return np.frombuffer(buf, dtype=dtype)  # writable; the array keeps the mapping alive
    return np.empty(n, dtype=dtype)


def _codepoints(text: str) -> np.ndarray:
    """Unicode code points of `text` as uint32, one per character."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@runtime_checkable
class Tokenizer(Protocol):
    """What core needs from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Iterable[int]) -> str: ...

    def to_json(self) -> dict: ...


class CharTokenizer:
    """One id per distinct character, ids in sorted character order.

    On Tiny Shakespeare this gives the lecture's 65 characters with '\\n' as id 0.
    """

    kind = "char"
    fixed_vocabulary = False  # the vocabulary is the corpus' own characters

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if any(len(c) != 1 for c in chars):
            raise ValueError("every vocabulary entry must be a single character")
        if sorted(set(chars)) != chars:
            raise ValueError("vocabulary must be sorted and free of duplicates")
        if not chars:
            raise BigramError("the vocabulary is empty: train on a non-empty corpus")
        self.chars = chars
        self._cps = np.array([ord(c) for c in chars], dtype=np.uint32)  # sorted
        self.dtype = token_dtype(len(chars))
        self._byte_table = _byte_table(self._cps)

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """Build the vocabulary from every character that occurs in `text`."""
        seen = np.zeros(0, dtype=np.uint32)
        for start in range(0, len(text), _CHUNK):
            seen = np.union1d(seen, np.unique(_codepoints(text[start : start + _CHUNK])))
        return cls(chr(int(cp)) for cp in seen)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of `text` that are not in the vocabulary, sorted."""
        cps = np.unique(_codepoints(text))
        return [chr(int(c)) for c in np.setdiff1d(cps, self._cps)]

    def encode(self, text: str) -> np.ndarray:
        """Ids for `text`, as the smallest unsigned dtype that holds the vocab."""
        out = _new_ids(len(text), self.dtype)
        if self._byte_table is not None and self._encode_bytes(text, out):
            return out
        for start in range(0, len(text), _CHUNK):
            cps = _codepoints(text[start : start + _CHUNK])
            ids = np.searchsorted(self._cps, cps)  # sorted vocab: binary search per char
            ids = np.minimum(ids, len(self._cps) - 1)
            if not np.array_equal(self._cps[ids], cps):
                bad = self.unknown_chars(text[start : start + _CHUNK])
                raise BigramError(
                    f"{len(bad)} character(s) not in the vocabulary: {_show(bad)}; "
                    "use only characters the model was trained on (see config.json's 'vocab')"
                )
            out[start : start + len(cps)] = ids
        return out

    def _encode_bytes(self, text: str, out: np.ndarray) -> bool:
        """The Latin-1 fast path: each character's byte mapped to its id through a 256-entry table.

        Characters outside the vocabulary become 0xFF (never an id when V < 256);
        False sends the caller to the general path, which names them. A long
        text is split between threads (np.take releases the GIL); a short one
        goes through bytes.translate, the fastest single-threaded table lookup.
        """
        n = len(text)
        workers = min(_MAX_THREADS, os.cpu_count() or 1) if n >= _PARALLEL_CHARS else 1
        if workers == 1:
            return self._map_range(text, out, 0, n, self._translate)
        step = -(-n // workers // _BYTE_CHUNK) * _BYTE_CHUNK  # whole chunks per thread
        with ThreadPoolExecutor(workers) as pool:
            part = lambda lo: self._map_range(text, out, lo, min(lo + step, n), self._take)  # noqa: E731
            return all(list(pool.map(part, range(0, n, step))))

    def _map_range(self, text: str, out: np.ndarray, lo: int, hi: int, lookup) -> bool:
        """out[lo:hi] = ids of text[lo:hi], chunk by chunk; False at the first unknown character."""
        for start in range(lo, hi, _BYTE_CHUNK):
            end = min(start + _BYTE_CHUNK, hi)
            try:
                raw = text[start:end].encode("latin-1")  # under the GIL, but a memcpy
            except UnicodeEncodeError:
                return False
            if not lookup(raw, out[start:end]):
                return False
        return True

    def _translate(self, raw: bytes, ids: np.ndarray) -> bool:
        """bytes.translate: the fastest lookup on one thread (it holds the GIL)."""
        mapped = raw.translate(self._byte_table)
        ids[:] = np.frombuffer(mapped, dtype=np.uint8)
        return self.vocab_size == 256 or b"\xff" not in mapped

    def _take(self, raw: bytes, ids: np.ndarray) -> bool:
        """np.take through the same table: it releases the GIL, so threads overlap."""
        np.take(np.frombuffer(self._byte_table, dtype=np.uint8), np.frombuffer(raw, dtype=np.uint8), out=ids)
        return self.vocab_size == 256 or ids.max() != 0xFF

    def decode(self, ids: Iterable[int]) -> str:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token id out of range for vocab of {self.vocab_size}")
        # Via UTF-32 code points, not a '<U1' array, which reads '\x00' as "no character".
        return self._cps[ids].tobytes().decode("utf-32-le", "surrogatepass")

    def to_json(self) -> dict:
        return {"kind": self.kind, "chars": "".join(self.chars)}

    @classmethod
    def from_json(cls, obj: dict) -> "CharTokenizer":
        if not isinstance(obj, dict) or obj.get("kind") != cls.kind or not isinstance(obj.get("chars"), str):
            raise ValueError("not a char tokenizer")
        _check_no_surrogates(obj["chars"])
        return cls(list(obj["chars"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _check_no_surrogates(chars: str) -> None:
    """A saved vocabulary comes from UTF-8 text, which cannot hold a lone surrogate: one means tampering
    (and it could be neither printed nor drawn)."""
    bad = re.search("[\ud800-\udfff]", chars)
    if bad is not None:
        raise ValueError(f"its vocabulary holds the lone surrogate U+{ord(bad[0]):04X}, which no UTF-8 text contains")


def _byte_table(cps: np.ndarray) -> bytes | None:
    """A 256-byte translate table, Latin-1 character -> id (0xFF: not in the vocab),
    or None when some character is beyond Latin-1 or the ids do not fit a byte."""
    if len(cps) > 256 or (len(cps) and int(cps[-1]) > 255):
        return None
    table = np.full(256, 255, dtype=np.uint8)
    table[cps] = np.arange(len(cps), dtype=np.uint8)
    return table.tobytes()


def _show(chars: list[str], limit: int = 20) -> str:
    """Characters as a readable list: repr() makes '\\n' and spaces visible."""
    shown = ", ".join(json.dumps(c, ensure_ascii=False) for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


class ByteTokenizer:
    """The UTF-8 bytes of the text as ids: V = 256, and no character is ever unknown.

    A character outside ASCII becomes 2-4 tokens, so a byte model predicts
    UTF-8 continuation bytes too. decode() replaces an incomplete sequence
    (a sample cut mid-character) with U+FFFD instead of failing.
    """

    kind = "byte"
    fixed_vocabulary = True  # every byte is an id whatever the corpus: an unused id is no mismatch
    vocab_size = 256
    dtype = np.dtype(np.uint8)

    @classmethod
    def from_text(cls, text: str) -> "ByteTokenizer":
        return cls()  # the vocabulary does not depend on the text

    def unknown_chars(self, text: str) -> list[str]:
        return []

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8).copy()  # (N,)

    def decode(self, ids: Iterable[int]) -> str:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() > 255):
            raise ValueError("token id out of range for the byte vocab of 256")
        return ids.astype(np.uint8).tobytes().decode("utf-8", "replace")

    def to_json(self) -> dict:
        return {"kind": self.kind}

    @classmethod
    def from_json(cls, obj: dict) -> "ByteTokenizer":
        if not isinstance(obj, dict) or obj.get("kind") != cls.kind:
            raise ValueError("not a byte tokenizer")
        return cls()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByteTokenizer)

    def __repr__(self) -> str:
        return "ByteTokenizer(vocab_size=256)"


TOKENIZERS = {CharTokenizer.kind: CharTokenizer, ByteTokenizer.kind: ByteTokenizer}


def tokenizer_from_json(obj: dict) -> Tokenizer:
    """Rebuild a tokenizer saved with `to_json`."""
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind in TOKENIZERS:
        return TOKENIZERS[kind].from_json(obj)
    raise ValueError(f"unknown tokenizer kind {kind!r}")
