"""Dataset facts pinned as nanoGPT's prepare.py does, and the data path's contracts."""

import numpy as np
import pytest

from bigram.core.data import TINY_SHAKESPEARE_SHA256, Batcher, Corpus, bigram_counts, sha256_file
from bigram.core.errors import BigramError
from bigram.core.tokenizer import CharTokenizer


def test_tiny_shakespeare_facts(shakespeare, shakespeare_path):
    assert sha256_file(shakespeare_path) == TINY_SHAKESPEARE_SHA256
    assert shakespeare.tokenizer.vocab_size == 65
    assert shakespeare.tokenizer.chars[0] == "\n"  # sorted: newline first, then space
    assert shakespeare.tokenizer.chars[1] == " "
    assert len(shakespeare.train) == 1_003_854
    assert len(shakespeare.val) == 111_540
    assert shakespeare.train.dtype == np.uint8  # 65 ids fit a byte


def test_encode_matches_the_lectures_dict_lookup(shakespeare_path):
    text = shakespeare_path.read_text(encoding="utf-8")[:20_000]
    tok = CharTokenizer.from_text(text)
    stoi = {ch: i for i, ch in enumerate(sorted(set(text)))}
    assert tok.encode(text).tolist() == [stoi[c] for c in text]
    assert tok.decode(tok.encode(text)) == text


def test_encode_is_chunked_without_changing_the_result(monkeypatch):
    import bigram.core.tokenizer as t

    text = "hello, wörld ✓\n" * 100
    whole = t.CharTokenizer.from_text(text).encode(text)
    monkeypatch.setattr(t, "_CHUNK", 7)  # force many chunk boundaries
    tok = t.CharTokenizer.from_text(text)
    assert np.array_equal(tok.encode(text), whole)


def test_unknown_character_is_a_clean_error():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(BigramError, match='"z"'):
        tok.encode("abz")


def test_tokenizer_json_round_trip():
    tok = CharTokenizer.from_text("to be or not\n")
    again = CharTokenizer.from_json(tok.to_json())
    assert again == tok and again.encode("not be") .tolist() == tok.encode("not be").tolist()


def test_batches_are_shifted_windows_inside_the_split():
    data = np.arange(50, dtype=np.int64)
    b = Batcher(data, batch_size=16, block_size=8, seed=0)
    for _ in range(20):
        x, y = b.get_batch()
        assert x.shape == y.shape == (16, 8)
        assert np.array_equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
        assert np.array_equal(y - x, np.ones_like(x))  # windows of consecutive tokens
        assert x.min() >= 0 and y.max() <= 49  # never past the end


def test_every_window_is_reachable():
    data = np.arange(12)
    b = Batcher(data, batch_size=64, block_size=4, seed=1)
    starts = set(b.offsets(steps=20).ravel().tolist())
    assert starts == set(range(12 - 4))  # 0 .. len - T - 1


def test_drawing_many_steps_at_once_gives_the_same_batches():
    data = np.arange(1000)
    one = Batcher(data, 4, 8, seed=3)
    many = Batcher(data, 4, 8, seed=3)
    singles = np.stack([one.offsets() for _ in range(10)])
    assert np.array_equal(many.offsets(steps=10), singles)


def test_bigram_counts_count_pairs():
    tokens = np.array([0, 1, 1, 2, 0, 1])
    c = bigram_counts(tokens, 3)
    assert c[0, 1] == 2 and c[1, 1] == 1 and c[1, 2] == 1 and c[2, 0] == 1
    assert c.sum() == len(tokens) - 1


def test_split_is_first_ninety_percent():
    corpus = Corpus.from_text("abcdefghij" * 10)
    assert len(corpus.train) == 90 and len(corpus.val) == 10
    assert corpus.tokenizer.decode(corpus.val) == "abcdefghij"
