"""`bigram vocab`: every character with its id and its count in the corpus, invisible ones spelled out."""

from __future__ import annotations

import json
from collections import Counter

import bigram

from clirun import message_lines, run_cli

INVISIBLE = "a\u200db c\u00a0d\te\r\nf\ufeffg\n"  # zero-width joiner, no-break space, tab, CR, BOM


def test_counts_and_escapes_of_a_text(tmp_path):
    path = tmp_path / "t.txt"
    text = INVISIBLE * 3 + "aaa"
    path.write_text(text, encoding="utf-8")
    code, out, err = run_cli(["vocab", "--data", path, "--json"])
    assert code == 0, err
    got = json.loads(out)
    want = Counter(text)
    assert got["vocab_size"] == len(want) and got["counts_from"] == str(path)
    assert {r["char"]: r["count"] for r in got["vocab"]} == dict(want)
    assert [r["char"] for r in got["vocab"]] == sorted(want)  # ids in sorted character order
    shown = {r["char"]: r["shown"] for r in got["vocab"]}
    assert shown["\u200d"] == "\\u200d" and shown["\u00a0"] == "\\xa0" and shown["\ufeff"] == "\\ufeff"
    assert shown["\t"] == "\\t" and shown["\r"] == "\\r" and shown["\n"] == "\\n" and shown[" "] == "␣"
    code, out, _ = run_cli(["vocab", "--data", path])
    rows = out.splitlines()[2:]
    assert len(rows) == len(want)
    for row in rows:  # id, a visible char, the count: never an empty-looking cell
        cells = row.split()
        assert len(cells) == 3 and cells[1] and cells[2].replace(",", "").isdigit(), row
    assert not set(out) & {"\u200d", "\u00a0", "\ufeff", "\t", "\r"}  # nothing invisible reaches the terminal


def test_a_checkpoint_records_its_corpus_counts(tmp_path, shakespeare_path):
    text = shakespeare_path.read_text(encoding="utf-8")[:30_000]
    data = tmp_path / "d.txt"
    data.write_text(text, encoding="utf-8")
    for cmd in (["train", "--steps", "3", "--max-new-tokens", "0"], ["fit"]):
        out = tmp_path / cmd[0]
        code, _, err = run_cli(["-b", "numpy", *cmd, "--data", data, "--out", out])
        assert code == 0, err
        code, stdout, err = run_cli(["vocab", "--checkpoint", out, "--json"])
        got = json.loads(stdout)
        assert {r["char"]: r["count"] for r in got["vocab"]} == dict(Counter(text))  # train and val: all of --data
        assert got["counts_from"].startswith(str(data))
    # another text, counted in the checkpoint's vocabulary
    other = tmp_path / "o.txt"
    other.write_text("First Citizen:\nFirst\n", encoding="utf-8")
    code, stdout, _ = run_cli(["vocab", "--checkpoint", tmp_path / "fit", "--data", other, "--json"])
    got = {r["char"]: r["count"] for r in json.loads(stdout)["vocab"]}
    assert got["F"] == 2 and got["\n"] == 2 and got["q"] == 0 and len(got) == len(set(text))
    other.write_text("naïve\n", encoding="utf-8")
    code, out, err = run_cli(["vocab", "--checkpoint", tmp_path / "fit", "--data", other])
    assert code == 2 and len(message_lines(err)) == 1 and '"ï"' in err


def test_val_data_is_not_counted_as_the_corpus(tmp_path):
    data, val = tmp_path / "d.txt", tmp_path / "v.txt"
    data.write_text("abcabcab\n" * 30, encoding="utf-8")
    val.write_text("cab\n" * 50, encoding="utf-8")
    code, _, err = run_cli(["-b", "numpy", "train", "--data", data, "--val-data", val, "--steps", "2",
                            "--block-size", "2", "--out", tmp_path / "ck", "--max-new-tokens", "0"])
    assert code == 0, err
    got = {e.char: e.count for e in bigram.vocab(tmp_path / "ck")}
    assert got == dict(Counter("abcabcab\n" * 30))


def test_byte_vocabulary_shows_bytes(tmp_path):
    data = tmp_path / "d.txt"
    data.write_text("héllo\n" * 20, encoding="utf-8")
    code, _, err = run_cli(["-b", "numpy", "train", "--data", data, "--tokenizer", "byte", "--steps", "2",
                            "--out", tmp_path / "ck", "--max-new-tokens", "0"])
    assert code == 0, err
    table = bigram.vocab(tmp_path / "ck")
    assert len(table) == 256 and table[ord("h")].count == 20 and table[0xc3].count == 20  # é is c3 a9
    assert table[0xc3].shown == "\\xc3" and table[0xc3].char is None and table[10].shown == "\\n"
    assert sum(e.count for e in table) == len("héllo\n".encode()) * 20


def test_api_vocab_of_a_corpus_and_a_model(shakespeare):
    table = bigram.vocab(shakespeare)
    assert len(table) == 65 and table[0].shown == "\\n" and table[1].shown == "␣"
    assert sum(e.count for e in table) == len(shakespeare.train) + len(shakespeare.val)
    assert table[1].count > table[0].count  # spaces outnumber newlines
    assert "<table>" in table._repr_html_() and str(table).startswith("vocabulary: 65 characters")


def test_an_old_checkpoint_without_counts_shows_dashes(tmp_path):
    import numpy as np

    from bigram.core.backend import fresh_state
    from bigram.core.checkpoint import save_checkpoint
    from bigram.core.tokenizer import CharTokenizer

    tok = CharTokenizer.from_text("ab\n")
    save_checkpoint(tmp_path / "ck", fresh_state(np.zeros((3, 3), dtype=np.float32)), tok, {})
    code, out, err = run_cli(["vocab", "--checkpoint", tmp_path / "ck"])
    assert code == 0, err
    assert [row.split() for row in out.splitlines()[2:]] == [["0", "\\n", "-"], ["1", "a", "-"], ["2", "b", "-"]]
