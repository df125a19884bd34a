"""`bigram next` and Model.next_probs: one row of the table, the backend's softmax, sorted, shown readably."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bigram.core.checkpoint import load_checkpoint
from bigram.core.display import visible

from clirun import message_lines, run_cli, train_checkpoint

BACKENDS = ["numpy", "torch"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shakespeare_path):
    """The default 1500-step run on Tiny Shakespeare, through the CLI."""
    return train_checkpoint(tmp_path_factory.mktemp("next") / "ck", shakespeare_path, steps=1500)


def softmax_row(W: np.ndarray, i: int) -> np.ndarray:
    """P(next | i) written here from the saved table, in float64, independently of any backend."""
    row = W[i].astype(np.float64)
    e = np.exp(row - row.max())
    return e / e.sum()


@pytest.mark.parametrize("backend", BACKENDS)
def test_q_puts_u_first_with_the_softmax_of_the_checkpoint_row(backend, trained):
    code, out, err = run_cli(["-b", backend, "next", "--checkpoint", trained, "--prompt", "q", "--json"])
    assert code == 0, err
    got = json.loads(out)
    ck = load_checkpoint(trained)
    chars = ck.tokenizer.chars
    q = chars.index("q")
    want = softmax_row(ck.weights, q)
    assert got["context"] == "q" and got["context_id"] == q and got["vocab_size"] == 65
    rows = got["next"]
    assert len(rows) == 10 and [r["rank"] for r in rows] == list(range(1, 11))
    assert rows[0]["char"] == "u" and rows[0]["id"] == chars.index("u")
    for r in rows:
        assert chars[r["id"]] == r["char"]
        assert abs(r["prob"] - want[r["id"]]) < 1e-6
    assert [r["id"] for r in rows] == list(np.argsort(-want, kind="stable")[:10])  # the 10 most likely, in order
    assert rows[0]["prob"] > 0.9  # 'q' is followed by 'u' almost always in Shakespeare


def test_the_table_shows_newline_and_space_readably(trained):
    code, out, err = run_cli(["-b", "numpy", "next", "--checkpoint", trained, "--prompt", "ROMEO:", "--top-k", "3"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("P(next | :): the 3 most likely of 65 characters")
    assert 'last character of "ROMEO:"' in lines[0]  # the bigram reads only ':'
    assert lines[1].split() == ["rank", "next", "id", "probability"]
    # After ':' a speech begins on the next line: '\n' first, then a space, shown visibly.
    assert lines[2].split()[:3] == ["1", "\\n", "0"] and lines[3].split()[:3] == ["2", "␣", "1"]
    assert "\n\n" not in out and out.count("\n") == 6  # title, header, 3 rows, the covered mass


def test_all_rows_sum_to_one_and_the_api_table_agrees(trained):
    import bigram

    model = bigram.load(trained, backend="numpy")
    table = model.next_probs("th", top_k=None)
    assert len(table) == 65 and table.context == "h"
    assert abs(sum(r.prob for r in table) - 1.0) < 1e-9
    assert all(a.prob >= b.prob for a, b in zip(table.rows, table.rows[1:]))
    W = load_checkpoint(trained).weights
    assert abs(table["e"] - softmax_row(W, model.tokenizer.chars.index("h"))[model.tokenizer.chars.index("e")]) < 1e-9
    assert "<table>" in table._repr_html_() and "␣" in table._repr_html_()
    assert str(table).splitlines()[0].startswith("P(next | h): all of 65")


@pytest.mark.parametrize("argv,needle", [
    (["--prompt", ""], "--prompt is empty"),
    (["--prompt", "é"], '"é"'),
    (["--prompt", "a", "--top-k", "0"], "--top-k"),
    (["--prompt", "a", "--checkpoint", "{missing}"], "does not exist"),
])
def test_bad_input_is_one_line(argv, needle, trained, tmp_path):
    argv = [a.replace("{missing}", str(tmp_path / "nope")) for a in argv]
    if "--checkpoint" not in argv:
        argv += ["--checkpoint", str(trained)]
    code, out, err = run_cli(["-b", "numpy", "next", *argv])
    assert code == 2 and out == ""
    assert len(message_lines(err)) == 1 == err.count("\n") and needle in err


@pytest.mark.parametrize("ch,shown", [
    ("\n", "\\n"), (" ", "␣"), ("\t", "\\t"), ("\r", "\\r"), ("\\", "\\\\"), ("\x00", "\\x00"), ("\x7f", "\\x7f"),
    ("\u200d", "\\u200d"), ("\ufeff", "\\ufeff"), ("\u00a0", "\\xa0"), ("\u0301", "\\u0301"), ("\u2028", "\\u2028"),
    ("\U000e0001", "\\U000e0001"), ("a", "a"), ("é", "é"), ("✓", "✓"), ("Ж", "Ж"),
])
def test_visible_spells_out_what_would_not_show(ch, shown):
    assert visible(ch) == shown
