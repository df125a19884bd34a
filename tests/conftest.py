"""Shared fixtures and hypothesis profiles.

Profiles: "dev" (default, random), "ci" (derandomized, chosen when $CI is set).
Both use deadline=None: timing belongs in benchmarks/, not in tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", deadline=None, max_examples=50, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent


# The user's environment as the session found it, before _isolated_cache points each test elsewhere.
USER_ENV = dict(os.environ)
SHARED_DATA = ("shared", "data", "tinyshakespeare.txt")


def locate_shakespeare(environ=USER_ENV, root: Path = ROOT) -> Path:
    """Tiny Shakespeare for the tests, found the way the CLI finds it.

    $BIGRAM_TEST_DATA; else ../shared/data/tinyshakespeare.txt beside the
    checkout (CI, offline); else the user cache ($BIGRAM_CACHE_DIR or the
    platform's); else the checked download ($BIGRAM_DATA_URL honoured, sha256
    checked) into that cache, so a machine downloads it once. A BigramError says
    what failed.
    """
    from bigram.core.download import cache_dir, tiny_shakespeare_path
    from bigram.core.errors import BigramError

    named = environ.get("BIGRAM_TEST_DATA")
    if named:
        if not Path(named).is_file():
            raise BigramError(f"$BIGRAM_TEST_DATA names {named}, which is not a file; fix it or unset it")
        return Path(named)
    for base in (root.parent, root):
        if base.joinpath(*SHARED_DATA).is_file():
            return base.joinpath(*SHARED_DATA)
    return tiny_shakespeare_path(cache=cache_dir(environ), url=environ.get("BIGRAM_DATA_URL") or None)


@pytest.fixture(scope="session")
def shakespeare_path() -> Path:
    from bigram.core.errors import BigramError

    try:
        return locate_shakespeare()
    except BigramError as e:
        pytest.fail(f"Tiny Shakespeare not found: {e} (or set BIGRAM_TEST_DATA=FILE)", pytrace=False)


@pytest.fixture(scope="session")
def shakespeare(shakespeare_path):
    from bigram.core.data import Corpus

    return Corpus.load(shakespeare_path)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's cache or the network: each test gets its own cache dir."""
    monkeypatch.setenv("BIGRAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BIGRAM_DATA_URL", "http://127.0.0.1:9/unreachable")


def _backends_module():
    """tests/backends.py (which backends the shared tests run against), or None where this conftest runs alone."""
    if not (Path(__file__).with_name("backends.py")).is_file():
        return None
    import backends

    return backends


def pytest_configure(config):
    """Check $BIGRAM_TEST_BACKENDS once, before collection: a name not installed is a usage error."""
    _backends_module()  # tests/backends.py raises pytest.UsageError for a bad name


def pytest_report_header(config):
    b = _backends_module()
    if b is None:
        return None
    return "bigram backends under test: " + ", ".join(
        f"{n} ({', '.join(sorted(b.capabilities(n)))})" for n in b.BACKENDS) + " (set BIGRAM_TEST_BACKENDS to choose)"
