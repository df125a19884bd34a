"""One broken plugin never takes the app down: it is reported, the others work."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from clirun import message_lines, run_cli, small_text
from bigram.core import plugins

BOOM = '''
from bigram.core.hookspecs import hookimpl

@hookimpl
def bigram_backends():
    raise RuntimeError("boom in the hook")
'''


@pytest.fixture
def broken_plugins(monkeypatch, tmp_path):
    """The real entry points plus three broken ones: a missing module, a failing import, a failing hook."""
    (tmp_path / "bigram_test_import_fails.py").write_text("raise ImportError('needs libfoo')\n")
    (tmp_path / "bigram_test_hook_fails.py").write_text(BOOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    group = plugins.ENTRY_POINT_GROUP
    extra = [importlib.metadata.EntryPoint("missing", "bigram_test_no_such_module", group),
             importlib.metadata.EntryPoint("importfails", "bigram_test_import_fails", group),
             importlib.metadata.EntryPoint("hookfails", "bigram_test_hook_fails", group)]
    real = plugins._entry_points
    monkeypatch.setattr(plugins, "_entry_points", lambda: real() + extra)


def test_backends_lists_the_good_and_reports_the_broken(broken_plugins):
    code, out, err = run_cli(["backends", "--json"])
    assert code == 0, err
    got = json.loads(out)
    assert {b["name"] for b in got["backends"]} >= {"numpy", "torch"}
    errors = {e["plugin"]: e["error"] for e in got["errors"]}
    assert errors["missing"].startswith("ModuleNotFoundError")
    assert errors["importfails"] == "ImportError: needs libfoo"
    assert errors["hookfails"] == "RuntimeError: boom in the hook"


def test_training_works_beside_broken_plugins(broken_plugins, tmp_path, shakespeare_path):
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    code, _, err = run_cli(["--backend", "numpy", "train", "--data", data, "--steps", 2, "--out", tmp_path / "o",
                            "--max-new-tokens", 0])
    assert code == 0, err
    assert "Traceback" not in err
    # each broken plugin is reported once per command, however often the command asks for its backend
    assert err.count("needs libfoo") == 1, err


def test_choosing_a_broken_plugin_names_its_failure(broken_plugins, tmp_path):
    code, _, err = run_cli(["--backend", "importfails", "train", "--steps", 2, "--out", tmp_path / "o"])
    assert code == 2
    (line,) = message_lines(err)
    assert "unknown backend 'importfails'" in line and "available backends:" in line and "numpy, torch" in line
    assert "plugin 'importfails' failed to load: ImportError: needs libfoo" in line
