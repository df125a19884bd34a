"""The tests find Tiny Shakespeare the way the CLI does, so a fresh clone anywhere can run them.

Order: $BIGRAM_TEST_DATA, ../shared/data beside the checkout, the user cache,
then the checked download into that cache (once per machine). The environment
is passed explicitly: conftest snapshots the user's before _isolated_cache
points each test at a private cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bigram.core.download import TINY_SHAKESPEARE_NAME, TINY_SHAKESPEARE_SHA256, sha256_file
from bigram.core.errors import BigramError
from conftest import SHARED_DATA, locate_shakespeare


@pytest.fixture
def clone(tmp_path) -> Path:
    """A checkout with nothing beside it."""
    root = tmp_path / "somewhere" / "bigram"
    root.mkdir(parents=True)
    return root


def test_bigram_test_data_comes_first(clone, tmp_path, shakespeare_path):
    mine = tmp_path / "mine.txt"
    mine.write_bytes(b"any text at all\n")
    (clone.parent.joinpath(*SHARED_DATA)).parent.mkdir(parents=True)
    clone.parent.joinpath(*SHARED_DATA).write_bytes(Path(shakespeare_path).read_bytes())
    assert locate_shakespeare({"BIGRAM_TEST_DATA": str(mine)}, clone) == mine


def test_a_missing_bigram_test_data_is_named(clone, tmp_path):
    with pytest.raises(BigramError, match="BIGRAM_TEST_DATA names .*nope.txt, which is not a file"):
        locate_shakespeare({"BIGRAM_TEST_DATA": str(tmp_path / "nope.txt")}, clone)


def test_shared_beside_the_checkout_comes_before_the_cache(clone, tmp_path, shakespeare_path):
    shared = clone.parent.joinpath(*SHARED_DATA)
    shared.parent.mkdir(parents=True)
    shared.write_bytes(Path(shakespeare_path).read_bytes())
    env = {"BIGRAM_CACHE_DIR": str(tmp_path / "cache"), "BIGRAM_DATA_URL": "http://127.0.0.1:9/unreachable"}
    assert locate_shakespeare(env, clone) == shared
    assert not (tmp_path / "cache").exists()


def test_without_shared_the_download_fills_the_cache_once(clone, tmp_path, shakespeare_path):
    """A fresh clone with no ../shared: downloaded ($BIGRAM_DATA_URL, here a file:// URL), checked, cached, reused."""
    cache = tmp_path / "user-cache"
    env = {"BIGRAM_CACHE_DIR": str(cache), "BIGRAM_DATA_URL": Path(shakespeare_path).resolve().as_uri()}
    got = locate_shakespeare(env, clone)
    assert got == cache / TINY_SHAKESPEARE_NAME
    assert sha256_file(got) == TINY_SHAKESPEARE_SHA256
    mtime = got.stat().st_mtime_ns
    offline = {**env, "BIGRAM_DATA_URL": "http://127.0.0.1:9/unreachable"}  # the next session needs no network
    assert locate_shakespeare(offline, clone) == got
    assert got.stat().st_mtime_ns == mtime


def test_the_download_is_checked(clone, tmp_path):
    wrong = tmp_path / "wrong.txt"
    wrong.write_bytes(b"not Shakespeare\n")
    env = {"BIGRAM_CACHE_DIR": str(tmp_path / "cache"), "BIGRAM_DATA_URL": wrong.as_uri()}
    with pytest.raises(BigramError, match="has sha256 .* it was not kept"):
        locate_shakespeare(env, clone)
    assert not (tmp_path / "cache" / TINY_SHAKESPEARE_NAME).exists()


PROBE_TEST = """
import os
from bigram.core.download import TINY_SHAKESPEARE_SHA256, sha256_file

def test_uses_the_corpus(shakespeare_path):
    assert os.environ["BIGRAM_DATA_URL"] == "http://127.0.0.1:9/unreachable"  # _isolated_cache is in force
    assert sha256_file(shakespeare_path) == TINY_SHAKESPEARE_SHA256
    print("CORPUS", shakespeare_path)

def test_needs_no_corpus():
    pass
"""


def test_a_fresh_clone_runs_its_tests_with_only_a_download_url(clone, tmp_path, shakespeare_path):
    """This conftest, in a checkout with no ../shared and an empty cache: the session downloads once and passes."""
    import os
    import shutil
    import subprocess
    import sys

    (clone / "tests").mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), clone / "tests" / "conftest.py")
    (clone / "tests" / "test_probe.py").write_text(PROBE_TEST)
    cache = tmp_path / "empty-cache"
    env = {k: v for k, v in os.environ.items() if k != "BIGRAM_TEST_DATA"}
    env.update(BIGRAM_CACHE_DIR=str(cache), BIGRAM_DATA_URL=Path(shakespeare_path).resolve().as_uri())
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests"],
                         cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "2 passed" in res.stdout
    assert f"CORPUS {cache / TINY_SHAKESPEARE_NAME}" in res.stdout
