"""The docs cannot drift: docs/api.md's examples run as doctests, on Tiny Shakespeare, offline."""

from __future__ import annotations

import doctest
import re
import shutil

from conftest import ROOT

FENCE = re.compile(r"^```pycon\n(.*?)^```$", re.M | re.S)


def pycon_only(markdown: str) -> str:
    """The page with everything outside ```pycon blocks blanked, line for line (so failures name the right line)."""
    lines = markdown.split("\n")
    out = [""] * len(lines)
    for m in FENCE.finditer(markdown):
        first = markdown.count("\n", 0, m.start(1))
        for i, line in enumerate(m.group(1).split("\n")[:-1]):
            out[first + i] = line
    return "\n".join(out)


def test_api_md_examples_run_and_print_what_the_page_says(shakespeare_path, tmp_path, monkeypatch):
    cache = tmp_path / "cache"  # conftest points BIGRAM_CACHE_DIR here: Corpus.load() finds the file offline
    cache.mkdir(exist_ok=True)
    shutil.copy(shakespeare_path, cache / "tinyshakespeare.txt")
    monkeypatch.chdir(tmp_path)  # model.save("out") writes here
    monkeypatch.delenv("BIGRAM_BACKEND", raising=False)
    path = ROOT / "docs" / "api.md"
    test = doctest.DocTestParser().get_doctest(pycon_only(path.read_text(encoding="utf-8")), {}, "api.md", str(path), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test)
    assert result.attempted >= 30
    assert result.failed == 0, f"{result.failed} example(s) of docs/api.md print something else (see stdout)"
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "plot.png").stat().st_size > 10_000


def test_readme_speed_table_is_the_committed_run():
    """Numbers in docs come from a command: every row of the README's Speed table is a row of
    benchmarks/RESULTS.md (written by `python benchmarks/run.py --commit`), and the README names that command."""
    readme = (ROOT / "README.md").read_text()
    speed = readme[readme.index("## Speed"):readme.index("## Command reference")]
    rows = [line for line in speed.splitlines() if line.startswith("| ") and not line.startswith("| measure")]
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    assert len(rows) >= 20, "the Speed table lost its rows"
    missing = [r for r in rows if r not in results.splitlines()]
    assert not missing, f"README rows not in benchmarks/RESULTS.md (rerun it or copy its table): {missing[:3]}"
    command = re.search(r"Command: `python (benchmarks/run\.py [^`]*)`", results).group(1)
    assert re.sub(r"--data \S+", "--data tinyshakespeare.txt", command) in " ".join(speed.split())
