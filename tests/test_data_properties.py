"""Properties of the data path: tokenizer round-trip, targets = inputs shifted by one, splits kept apart."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigram.core.data import TRAIN_FRACTION, Batcher, Corpus
from bigram.core.tokenizer import CharTokenizer

# Any Unicode text without surrogates (which UTF-8 files cannot hold).
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)


@settings(max_examples=100)
@given(text=texts)
def test_tokenizer_round_trips_any_unicode(text):
    tok = CharTokenizer.from_text(text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tok.vocab_size == len(set(text))
    assert ids.max() < tok.vocab_size
    assert CharTokenizer.from_json(tok.to_json()) == tok


@settings(max_examples=50)
@given(text=texts, extra=texts)
def test_encoding_with_a_larger_vocabulary_round_trips(text, extra):
    tok = CharTokenizer.from_text(text + extra)  # a vocabulary that also holds unused characters
    assert tok.decode(tok.encode(text)) == text


@st.composite
def batchers(draw):
    n = draw(st.integers(2, 500))
    T = draw(st.integers(1, n - 1))
    B = draw(st.integers(1, 64))
    data = np.arange(n, dtype=np.int64)  # each token is its own position: windows are checkable
    return Batcher(data, B, T, draw(st.integers(0, 2**32 - 1))), n


@settings(max_examples=50)
@given(bs=batchers(), steps=st.integers(1, 5))
def test_targets_are_inputs_shifted_by_one(bs, steps):
    b, n = bs
    for _ in range(steps):
        x, y = b.get_batch()  # (B,T), (B,T)
        assert x.shape == y.shape == (b.batch_size, b.block_size)
        assert np.array_equal(y, x + 1)  # positions: y[t] is the token after x[t]
        assert np.array_equal(x[:, 1:], y[:, :-1])
        assert x.min() >= 0 and y.max() <= n - 1  # never past the end of the data


@settings(max_examples=30)
@given(bs=batchers(), steps=st.integers(1, 6))
def test_drawing_steps_at_once_equals_one_at_a_time(bs, steps):
    b, _ = bs
    twin = Batcher(b.data, b.batch_size, b.block_size, 0)
    twin.set_state(b.get_state())
    at_once = twin.offsets(steps)  # (steps, B)
    one_by_one = np.stack([b.offsets() for _ in range(steps)])
    assert np.array_equal(at_once, one_by_one)


@settings(max_examples=50)
@given(n=st.integers(100, 400), B=st.integers(1, 16), T=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_batches_stay_inside_their_split(n, B, T, seed):
    # A text of distinct characters: each id names one position of the corpus.
    text = "".join(chr(0x4E00 + i) for i in range(n))
    corpus = Corpus.from_text(text)
    n_train = int(TRAIN_FRACTION * n)
    assert np.array_equal(np.concatenate([corpus.train, corpus.val]), np.arange(n))
    assert len(corpus.train) == n_train
    for split, lo, hi in (("train", 0, n_train), ("val", n_train, n)):
        data = corpus.split(split).astype(np.int64)  # val has >= 10 tokens: room for T + 1
        x, y = Batcher(data, B, T, seed).get_batch()
        assert x.min() >= lo and y.max() < hi, f"{split} batch left its split"


def test_batcher_refuses_a_split_shorter_than_a_window():
    from bigram.core.errors import BigramError

    with pytest.raises(BigramError, match="block-size"):
        Batcher(np.arange(4), 2, 4, 0)


def wide_text(n_chars: int, length: int, seed: int = 0) -> str:
    """Every one of n_chars characters (from U+0100 up, surrogates skipped, astral ones past
    65,280 of them), then `length` random ones: ids need uint16 past 256 and uint32 past 65,536."""
    codes = [c for c in range(0x100, 0x100 + n_chars + 0x800) if not 0xD800 <= c < 0xE000][:n_chars]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_chars, length)
    return "".join(map(chr, codes)) + "".join(chr(codes[i]) for i in picks)


@pytest.mark.parametrize("n_chars,dtype", [(300, "uint16"), (65_600, "uint32")])
def test_prepared_batches_equal_text_batches_for_wide_ids(tmp_path, n_chars, dtype):
    """A prepared split is read with pread at byte offsets: with 2- and 4-byte ids each window
    must be the one the text file's batcher gathers (and the text itself holds there)."""
    from bigram.core.fast import CountsStream
    from bigram.core.prepare import prepare

    text = wide_text(n_chars, 3000)
    path = tmp_path / "wide.txt"
    path.write_text(text, encoding="utf-8")
    prepare(path, tmp_path / "prep")
    plain, prepped = Corpus.load(path), Corpus.load(tmp_path / "prep")
    assert prepped.vocab_size == plain.vocab_size == n_chars and prepped.train.dtype == np.dtype(dtype)
    n_train = int(TRAIN_FRACTION * len(text))
    for split, base in (("train", 0), ("val", n_train)):
        a, b = (Batcher(c.split(split), 16, 7, 1234) for c in (plain, prepped))
        assert b._fd is not None  # the prepared split really goes through pread (a private detail, checked)
        for _ in range(3):
            (xa, ya), (xb, yb) = a.get_batch(), b.get_batch()
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb), split
        offsets = a.offsets(4)  # (S,B) as the training loop gathers them
        wa, wb = a.windows(offsets), b.windows(offsets)
        assert all(np.array_equal(p, q) for p, q in zip(wa, wb))
        dec = prepped.tokenizer.decode
        assert [dec(r) for r in wb[0].reshape(-1, 7)] == [text[base + s:base + s + 7] for s in offsets.ravel()]
    if dtype == "uint16":  # the loop's counts (V*V cells: only for the smaller vocabulary)
        sa, sb = (CountsStream(Batcher(c.train, 8, 5, 7), n_chars, "float64") for c in (plain, prepped))
        for _ in range(3):
            assert np.array_equal(sa()[0], sb()[0])
