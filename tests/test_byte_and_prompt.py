"""Byte-tokenizer checkpoints evaluate on their own data, and a sample's default start is a newline.

Issue 11, points 6 and 7: a byte model covers every byte by construction, so
an id its corpus never uses is not a vocabulary mismatch; `fit` takes
`--tokenizer` like `train`; with no `--prompt` a sample starts from a
newline where the vocabulary has one (byte 10 for the byte tokenizer, never
NUL), and otherwise says on stderr which token it starts from.
"""

from __future__ import annotations

import json

import pytest

from clirun import ok, run_cli, small_text


@pytest.fixture
def byte_dir(tmp_path, shakespeare_path):
    """A few KB of Tiny Shakespeare, prepared with the byte tokenizer (it uses ~60 of the 256 ids)."""
    text = tmp_path / "s.txt"
    text.write_text(small_text(shakespeare_path, 6000), encoding="utf-8")
    ok(["data", "prepare", text, "--out", tmp_path / "p", "--tokenizer", "byte"])
    return text, tmp_path / "p"


def test_byte_checkpoint_evaluates_on_the_directory_it_was_trained_on(byte_dir, tmp_path):
    _, p = byte_dir
    trained = json.loads(ok(["-b", "numpy", "train", "--data", p, "--out", tmp_path / "o", "--steps", "30",
                             "--max-new-tokens", "0", "--json"])[0])
    got = json.loads(ok(["-b", "numpy", "eval", "--checkpoint", tmp_path / "o", "--data", p, "--json"])[0])
    # the same exact losses train reported at its last step: the same data, read the same way
    assert got["train_loss"] == pytest.approx(trained["train_loss"], rel=1e-9)
    assert got["val_loss"] == pytest.approx(trained["val_loss"], rel=1e-9)


def test_fit_from_a_byte_directory_writes_a_byte_checkpoint_that_evaluates(byte_dir, tmp_path):
    text, p = byte_dir
    fitted = json.loads(ok(["-b", "numpy", "fit", "--data", p, "--out", tmp_path / "f", "--json"])[0])
    vocab = json.loads(ok(["vocab", "--checkpoint", tmp_path / "f", "--json"])[0])["vocab"]
    assert len(vocab) == 256 and (vocab[10]["id"], vocab[10]["shown"]) == (10, "\\n")
    got = json.loads(ok(["-b", "numpy", "eval", "--checkpoint", tmp_path / "f", "--data", p, "--json"])[0])
    assert got["train_loss"] == pytest.approx(fitted["train_loss"], rel=1e-9)
    # `fit --tokenizer byte` on the text is the same fit as from the prepared directory
    direct = json.loads(ok(["-b", "numpy", "fit", "--data", text, "--tokenizer", "byte", "--out", tmp_path / "g",
                            "--json"])[0])
    assert direct["train_loss"] == fitted["train_loss"] and direct["val_loss"] == fitted["val_loss"]


def test_tokenizer_option_char_works_and_a_mismatch_with_a_directory_is_one_line(byte_dir, tmp_path):
    text, p = byte_dir
    ok(["-b", "numpy", "train", "--data", text, "--tokenizer", "char", "--steps", "2", "--out", tmp_path / "c",
        "--max-new-tokens", "0"])  # was a TypeError traceback: CharTokenizer() needs its characters
    for cmd in (["train", "--steps", "2"], ["fit"]):
        code, out, err = run_cli(["-b", "numpy", *cmd, "--data", p, "--tokenizer", "char", "--out", tmp_path / "x"])
        assert code == 2 and out == "" and err.count("\n") == 1
        assert "byte tokenizer" in err and "--tokenizer char" in err
        assert not (tmp_path / "x").exists()


def test_a_char_checkpoint_still_refuses_a_corpus_with_another_vocabulary(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("abcab cba bca abc " * 50, encoding="utf-8")
    b.write_text("abab ba " * 50, encoding="utf-8")  # never uses 'c'
    ok(["-b", "numpy", "fit", "--data", a, "--out", tmp_path / "ck"])
    code, _, err = run_cli(["-b", "numpy", "eval", "--checkpoint", tmp_path / "ck", "--data", b])
    assert code == 2 and "vocabulary differs" in err


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_byte_sample_starts_from_a_newline_not_nul(byte_dir, tmp_path, backend):
    _, p = byte_dir
    ok(["-b", "numpy", "train", "--data", p, "--out", tmp_path / "o", "--steps", "50", "--max-new-tokens", "0"])
    out, err = ok(["-b", backend, "generate", "--checkpoint", tmp_path / "o", "--max-new-tokens", "200"])
    assert out.startswith("\n") and "\x00" not in out[:1] and "note:" not in err
    reference, _ = ok(["-b", "numpy", "generate", "--checkpoint", tmp_path / "o", "--max-new-tokens", "200"])
    assert out == reference  # the start is chosen in core: every backend writes the same text


def test_a_vocabulary_with_a_tab_and_a_newline_starts_from_the_newline(tmp_path):
    data = tmp_path / "t.txt"
    data.write_text("ab\tba\nab ba\tab\n" * 60, encoding="utf-8")  # '\t' sorts before '\n': it is token 0
    ok(["-b", "numpy", "train", "--data", data, "--out", tmp_path / "o", "--steps", "5", "--max-new-tokens", "0"])
    out, err = ok(["-b", "numpy", "generate", "--checkpoint", tmp_path / "o", "--max-new-tokens", "30"])
    assert out.startswith("\n") and "note:" not in err


def test_a_vocabulary_without_a_newline_names_its_start_token(tmp_path):
    data = tmp_path / "t.txt"
    data.write_text("ab\tba ab\tab ba\t" * 60, encoding="utf-8")
    out, err = ok(["-b", "numpy", "train", "--data", data, "--out", tmp_path / "o", "--steps", "5",
                   "--max-new-tokens", "30"])
    assert out.startswith("\t")
    notes = [ln for ln in err.splitlines() if ln.startswith("note:")]
    assert notes == ['note: the vocabulary has no newline, so the sample starts from token 0 ("\\t"); '
                     "pass --prompt to choose"]
    code, help_text, _ = run_cli(["generate", "--help"])
    assert code == 0 and "without one starts from its token 0" in " ".join(help_text.split())
