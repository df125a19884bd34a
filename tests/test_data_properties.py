"""Properties of the data path: tokenizer round-trip, targets = inputs shifted by one, splits kept apart."""

from __future__ import annotations

import numpy as np
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
    import pytest

    from bigram.core.errors import BigramError

    with pytest.raises(BigramError, match="block-size"):
        Batcher(np.arange(4), 2, 4, 0)
