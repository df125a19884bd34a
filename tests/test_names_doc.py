"""docs/names.md: the speaker-names example, rebuilt here, prints the numbers the page quotes."""

from __future__ import annotations

import json
import re

import pytest

from conftest import ROOT

from clirun import run_cli

DOC = ROOT / "docs" / "names.md"


@pytest.fixture(scope="module")
def names(tmp_path_factory, shakespeare_path):
    """The page's grep | tr | sort -u and two awk lines, in Python."""
    lines = shakespeare_path.read_text(encoding="utf-8").split("\n")
    found = sorted({ln[:-1].lower() for ln in lines if re.fullmatch(r"[A-Z][A-Za-z]*:", ln)})  # C-locale order
    d = tmp_path_factory.mktemp("names")
    rows = [(i + 1, name) for i, name in enumerate(found)]
    (d / "names-val.txt").write_text("".join(f"{n}\n" for i, n in rows if i % 10 == 0), encoding="utf-8")
    (d / "names-train.txt").write_text("".join(f"{n}\n" for i, n in rows if i % 10 != 0), encoding="utf-8")
    return d, found


def test_the_list_is_what_the_page_says(names):
    d, found = names
    doc = DOC.read_text(encoding="utf-8")
    assert len(found) == 191 and "191 names" in doc
    assert (d / "names-train.txt").read_text().count("\n") == 172 and "the other 172" in doc
    assert (d / "names-val.txt").read_text().count("\n") == 19 and "19 of them" in doc


def test_every_number_on_the_page(names, monkeypatch):
    d, _ = names
    monkeypatch.chdir(d)
    doc = DOC.read_text(encoding="utf-8")
    code, out, err = run_cli(["-b", "numpy", "train", "--data", "names-train.txt", "--val-data", "names-val.txt",
                              "--out", "out-names", "--json"])
    assert code == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    for line in err.splitlines():
        if line.startswith(("backend ", "step ")):
            assert line in doc, line
    assert f"| {got['train_loss']:.4f} | {got['val_loss']:.4f} |" in doc
    code, out, err = run_cli(["-b", "numpy", "fit", "--data", "names-train.txt", "--val-data", "names-val.txt",
                              "--out", "fit-names", "--json"])
    fit = json.loads(out)
    assert f"| {fit['train_loss']:.4f} | {fit['val_loss']:.4f} |" in doc
    assert f"| {fit['optimum_train_loss']:.4f} | - |" in doc
    code, out, _ = run_cli(["-b", "numpy", "next", "--checkpoint", "out-names", "--prompt", "\n", "--top-k", "5"])
    assert out.strip() in doc
    code, out, _ = run_cli(["-b", "numpy", "next", "--checkpoint", "out-names", "--prompt", "o", "--json"])
    top = json.loads(out)["next"][:3]
    assert [r["char"] for r in top] == ["r", "\n", "n"]
    assert f"`r` {top[0]['prob']:.4f}, `\\n` {top[1]['prob']:.4f}, `n` {top[2]['prob']:.4f}" in doc
    code, out, _ = run_cli(["-b", "numpy", "generate", "--checkpoint", "out-names", "--max-new-tokens", "80"])
    assert "```\n" + out + "```" in doc
    train = (d / "names-train.txt").read_text().split()
    ending = [n for n in train if n.endswith("o")]
    assert f"{len(ending)} of the {len(train)} names end" in doc
    assert all(n in ending for n in ("antonio", "benvolio", "gremio", "romeo", "tranio"))


def test_the_python_block_runs(names, monkeypatch, capsys):
    d, _ = names
    monkeypatch.chdir(d)
    block = re.search(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S).group(1)
    scope: dict = {}
    exec(compile(block, str(DOC), "exec"), scope)  # noqa: S102 - the page's own example
    model = scope["model"]
    assert model.vocab_size == 27 and model.val_loss is not None
    assert capsys.readouterr().out.count("\n") > 10  # the log lines and 80 sampled characters
