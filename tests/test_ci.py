"""CI runs what the README tells a contributor to run: the test command, verbatim, over the three backends."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"\*\*Run the tests:\*\*\s*```bash\n(.+?)\n```", readme, re.S)
    assert block, "README.md has no **Run the tests:** block"
    return block.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim():
    command = readme_test_command()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in ci  # a whole line of .ci/run
    assert "-e plugins/bigram-jax" in command and "-e tests/example_plugin" in command
    assert "BIGRAM_TEST_BACKENDS=numpy,torch,jax" in command and command.endswith("-m pytest")


def test_the_jax_plugin_is_its_own_distribution():
    pyproject = (ROOT / "plugins" / "bigram-jax" / "pyproject.toml").read_text(encoding="utf-8")
    assert 'name = "bigram-jax"' in pyproject
    for dep in ('"bigram"', '"jax', '"optax'):
        assert dep in pyproject, dep
    assert '[project.entry-points."bigram.backends"]' in pyproject and 'jax = "bigram_jax"' in pyproject
