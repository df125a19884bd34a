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


# ----------------------------------------------------------------------------
# a plugin's code is contained: whatever it raises, exits with, or prints


@pytest.fixture
def fake_dists(monkeypatch, tmp_path):
    from plugin_helpers import FakeDists

    return FakeDists(monkeypatch, tmp_path)


EXITS = {"sys-exit-0": "raise SystemExit(0)", "sys-exit-1": "import sys; sys.exit(1)", "bare-exit": "exit()",
         "base-exception": "raise BaseException('odd')", "generator-exit": "raise GeneratorExit"}


@pytest.mark.parametrize("source", list(EXITS.values()), ids=list(EXITS))
def test_a_plugin_that_exits_at_import_is_reported_as_broken(fake_dists, tmp_path, shakespeare_path, source):
    """SystemExit(0) from an import once made every command exit 0 having done nothing."""
    fake_dists.add("bigram-quitter", {"quitter": fake_dists.source_module("bigram_quitter_plugin", source)})
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    code, _, err = run_cli(["--backend", "numpy", "train", "--data", data, "--steps", 2, "--out", tmp_path / "o",
                            "--max-new-tokens", 0])
    assert code == 0, err
    assert (tmp_path / "o" / "model.safetensors").is_file()  # the command did its work
    [warning] = message_lines(err)
    assert warning.startswith("warning: plugin 'quitter' from bigram-quitter failed to load:"), err
    code, out, _ = run_cli(["backends", "--json"])
    assert code == 0 and [e["plugin"] for e in json.loads(out)["errors"]] == ["quitter"]


def test_ctrl_c_while_a_plugin_loads_still_stops_bigram(fake_dists):
    from bigram.core.plugins import load_backends

    fake_dists.add("bigram-slow", {"slow": fake_dists.source_module("bigram_slow_plugin", "raise KeyboardInterrupt")})
    with pytest.raises(KeyboardInterrupt):
        load_backends()


def _devices_plugin(fake_dists, devices_body: str) -> None:
    source = ("from bigram.backends.numpy_backend import NumpyBackend\n"
              "from bigram.core.hookspecs import hookimpl\n\n"
              "class Odd(NumpyBackend):\n    name = 'odd'\n\n"
              f"    @classmethod\n    def devices(cls):\n        {devices_body}\n\n"
              "@hookimpl\ndef bigram_backends():\n    return [Odd]\n")
    fake_dists.add("bigram-odd", {"odd": fake_dists.source_module("bigram_odd_plugin", source)})


DEVICES = {"raises": "raise RuntimeError('no driver')", "exits": "raise SystemExit(0)", "returns-none": "return None",
           "returns-ints": "return [1, 2]"}


@pytest.mark.parametrize("body", list(DEVICES.values()), ids=list(DEVICES))
@pytest.mark.parametrize("json_out", [True, False], ids=["json", "table"])
def test_backends_survives_a_plugin_whose_devices_fails(fake_dists, body, json_out):
    _devices_plugin(fake_dists, body)
    code, out, err = run_cli(["backends", "--json"] if json_out else ["backends"])
    assert code == 0 and "Traceback" not in err, err
    if json_out:
        got = json.loads(out)
        assert {"numpy", "torch", "odd"} <= {b["name"] for b in got["backends"]}
        [e] = got["errors"]
        assert e["plugin"] == "odd" and e["package"] == "bigram-odd" and "odd.devices() raised" in e["error"]
    else:
        assert "numpy" in out and "broken plugin" in out and "odd.devices() raised" in out


PRINTS = {"at-import": ("print('hello from a plugin at import')\n", "bigram_chatty_import"),
          "in-hook": ("", "bigram_chatty_hook")}


@pytest.mark.parametrize("where", list(PRINTS))
def test_a_plugin_that_prints_never_corrupts_json_stdout(fake_dists, tmp_path, shakespeare_path, where):
    top, module = PRINTS[where]
    hook = "    print('hello from a plugin hook')\n" if where == "in-hook" else ""
    source = (f"{top}from bigram.core.hookspecs import hookimpl\n\n@hookimpl\ndef bigram_backends():\n"
              f"{hook}    return []\n")
    fake_dists.add("bigram-chatty", {"chatty": fake_dists.source_module(module, source)})
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    code, out, err = run_cli(["backends", "--json"])
    assert code == 0 and {"numpy", "torch"} <= {b["name"] for b in json.loads(out)["backends"]}, out
    assert "hello from a plugin" in err  # shown, on stderr
    code, out, err = run_cli(["--backend", "numpy", "train", "--data", data, "--steps", 2, "--out", tmp_path / "o",
                              "--max-new-tokens", 0, "--json"])
    assert code == 0 and json.loads(out)["steps"] == 2, out


GARBAGE = {
    "create-returns-none": "return None",
    "create-returns-a-string": "return 'garbage'",
    "create-returns-an-object": "return object()",
    "forward-returns-a-string": "m = NumpyBigram(weights, dtype=dtype)\n        m.forward = lambda *a: ('x', 'y')\n"
                                "        return m",
    "create-exits": "raise SystemExit(0)",
}


@pytest.mark.parametrize("body", list(GARBAGE.values()), ids=list(GARBAGE))
def test_check_reports_fail_for_a_backend_that_returns_garbage(fake_dists, tmp_path, shakespeare_path, body):
    source = ("from bigram.backends.numpy_backend import NumpyBackend, NumpyBigram\n"
              "from bigram.core.hookspecs import hookimpl\n\n"
              "class Junk(NumpyBackend):\n    name = 'junk'\n\n"
              f"    @classmethod\n    def create(cls, weights, *, device='auto', dtype='float32', optim=None):\n"
              f"        {body}\n\n"
              "@hookimpl\ndef bigram_backends():\n    return [Junk]\n")
    fake_dists.add("bigram-junk", {"junk": fake_dists.source_module("bigram_junk_plugin", source)})
    data = tmp_path / "small.txt"
    data.write_text(small_text(shakespeare_path))
    code, out, err = run_cli(["check", "--backends", "numpy,junk,torch", "--data", data, "--block-size", 4,
                              "--steps", 2, "--json"])
    assert code == 1 and "Traceback" not in err, err
    report = {c["backend"]: c for c in json.loads(out)["comparisons"]}
    assert not report["junk"]["ok"] and report["junk"]["error"]
    assert report["torch"]["ok"]  # the other backends are still checked
    code, out, err = run_cli(["check", "--backends", "numpy,junk", "--data", data, "--block-size", 4, "--steps", 2])
    assert code == 1 and "junk vs numpy: FAIL (the backend failed:" in out and "check FAILED" in err
