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


def _find_shakespeare() -> Path | None:
    """Tiny Shakespeare for tests: $BIGRAM_TEST_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("BIGRAM_TEST_DATA")
    candidates = [Path(env)] if env else []
    candidates += [ROOT.parent / "shared" / "data" / "tinyshakespeare.txt", ROOT / "shared" / "data" / "tinyshakespeare.txt"]
    return next((p for p in candidates if p.is_file()), None)


@pytest.fixture(scope="session")
def shakespeare_path() -> Path:
    path = _find_shakespeare()
    if path is None:
        pytest.fail("Tiny Shakespeare not found: set BIGRAM_TEST_DATA or place it at ../shared/data/tinyshakespeare.txt")
    return path


@pytest.fixture(scope="session")
def shakespeare(shakespeare_path):
    from bigram.core.data import Corpus

    return Corpus.load(shakespeare_path)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's cache or the network: each test gets its own cache dir."""
    monkeypatch.setenv("BIGRAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BIGRAM_DATA_URL", "http://127.0.0.1:9/unreachable")
