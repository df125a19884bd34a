"""Third-party backends: discovery through entry points, broken and clashing plugins, the example package."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
from pathlib import Path

import pytest
from plugin_helpers import BuggyBackend, FakeBackend, FakeDists, run_cli

from bigram.core import hookspecs
from bigram.core.plugins import load_backends

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DIR = ROOT / "tests" / "example_plugin"


@pytest.fixture
def fake_dists(monkeypatch, tmp_path):
    return FakeDists(monkeypatch, tmp_path)


@pytest.fixture
def small_text(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40)
    return path


def cli(capsys, *args) -> tuple[int, str, str]:
    return run_cli(capsys, *args)


# ----------------------------------------------------------------------------
# a well-behaved third-party plugin


@pytest.fixture
def fake_plugin(fake_dists):
    fake_dists.add("bigram-fake-backend", {"fake": fake_dists.module("bigram_fake_plugin", FakeBackend)}, "9.9")
    return fake_dists


def test_fake_distribution_is_discovered(fake_plugin):
    reg = load_backends()
    info = reg.get("fake")
    assert info.cls is FakeBackend and (info.dist, info.version, info.plugin) == ("bigram-fake-backend", "9.9", "fake")
    assert {"numpy", "torch"} <= set(reg.backends)


def test_fake_backend_is_listed(fake_plugin, capsys):
    code, out, _ = cli(capsys, "backends", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["backends"]}
    assert rows["fake"]["package"] == "bigram-fake-backend" and rows["fake"]["version"] == "9.9"
    assert rows["fake"]["devices"] == ["cpu"]
    code, out, _ = cli(capsys, "backends")
    assert code == 0 and "bigram-fake-backend" in out


def test_fake_backend_is_usable_with_backend_option(fake_plugin, capsys, small_text, tmp_path):
    code, out, err = cli(capsys, "--backend", "fake", "train", "--data", str(small_text), "--steps", "5",
                         "--block-size", "4", "--out", str(tmp_path / "ck"), "--max-new-tokens", "0", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["backend"] == "fake" and result["steps"] == 5


def test_fake_backend_passes_check(fake_plugin, capsys, small_text):
    code, out, err = cli(capsys, "check", "--backends", "numpy,fake", "--data", str(small_text), "--block-size", "4",
                         "--steps", "3", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] and [c["backend"] for c in report["comparisons"]] == ["fake"]
    assert all(r["max_abs_diff"] == 0 for r in report["comparisons"][0]["rows"])  # the same math, bit for bit


def test_default_check_covers_every_installed_backend(fake_plugin, capsys, small_text):
    code, out, err = cli(capsys, "check", "--data", str(small_text), "--block-size", "4", "--steps", "2", "--json")
    assert code == 0, err
    checked = {c["backend"] for c in json.loads(out)["comparisons"]}
    assert checked == set(load_backends().backends) - {"numpy"}
    assert {"fake", "torch"} <= checked


def test_check_catches_a_buggy_third_party_backend(fake_dists, capsys, small_text):
    fake_dists.add("bigram-buggy-backend", {"buggy": fake_dists.module("bigram_buggy_plugin", BuggyBackend)})
    code, out, err = cli(capsys, "check", "--backends", "numpy,buggy", "--data", str(small_text), "--block-size", "4",
                         "--steps", "3")
    assert code == 1
    assert "FAIL" in out and "check FAILED" in err
    failed = {line.split("│")[1].strip() for line in out.splitlines() if "FAIL" in line and "│" in line}
    assert "dW" in failed and "dlogits" not in failed  # the scatter is wrong, the softmax is not


# ----------------------------------------------------------------------------
# broken and clashing plugins


def test_plugin_raising_on_import_is_reported_and_others_work(fake_plugin, capsys, small_text):
    fake_plugin.add("bigram-broken-backend", {"broken": fake_plugin.broken_module("bigram_broken_plugin", "boom")})
    reg = load_backends()
    assert {"numpy", "torch", "fake"} <= set(reg.backends)
    [e] = [e for e in reg.errors if e.plugin == "broken"]
    assert e.dist == "bigram-broken-backend" and e.error == "RuntimeError: boom"
    code, out, _ = cli(capsys, "backends", "--json")
    assert code == 0
    listing = json.loads(out)
    assert {"plugin": "broken", "package": "bigram-broken-backend", "error": "RuntimeError: boom"} in listing["errors"]
    assert "fake" in {r["name"] for r in listing["backends"]}
    code, out, _ = cli(capsys, "backends")
    assert code == 0 and "broken plugin" in out and "boom" in out
    code, _, err = cli(capsys, "check", "--backends", "numpy,fake", "--data", str(small_text), "--block-size", "4",
                       "--steps", "2", "--json")
    assert code == 0 and "bigram_broken_plugin" not in err and "'broken'" in err  # warned, not fatal
    code, _, err = cli(capsys, "--backend", "broken", "generate", "--checkpoint", "nowhere")
    assert code == 2 and "failed to load: RuntimeError: boom" in err and "Traceback" not in err


class SameNameBackend(FakeBackend):
    """A second, different backend class that also calls itself "fake"."""


class ImpostorNumpy(FakeBackend):
    """A third-party backend that claims the built-in name "numpy"."""

    name = "numpy"


def _backend_named_numpy(d):
    d.add("bigram-impostor", {"impostor": d.module("bigram_impostor_plugin", ImpostorNumpy)})
    return "numpy", "bigram", "bigram-impostor"


def _plugin_named_numpy(d):  # the entry point itself is called "numpy", like the built-in one
    d.add("bigram-impostor", {"numpy": d.module("bigram_impostor_plugin", ImpostorNumpy)})
    return "numpy", "bigram", "bigram-impostor"


def _two_third_parties(d):  # added in the "wrong" order: the package that sorts first wins, not the last one
    d.add("bigram-zz-backend", {"zz": d.module("bigram_zz_plugin", SameNameBackend)})
    d.add("bigram-aa-backend", {"aa": d.module("bigram_aa_plugin", FakeBackend)})
    return "fake", "bigram-aa-backend", "bigram-zz-backend"


@pytest.mark.parametrize("clash", [_backend_named_numpy, _plugin_named_numpy, _two_third_parties],
                         ids=["backend-named-numpy", "plugin-named-numpy", "two-third-parties"])
def test_a_duplicate_name_disables_the_duplicate_not_the_app(fake_dists, capsys, small_text, tmp_path, clash):
    """Built-ins win over third parties, and among third parties the order never depends on installation;
    the loser is disabled with one warning line naming both packages."""
    name, winner, loser = clash(fake_dists)
    reg = load_backends()
    assert reg.get(name).dist == winner and {"numpy", "torch"} <= set(reg.backends)
    [off] = reg.disabled
    assert off.dist == loser and winner in off.error
    code, out, err = cli(capsys, "backends", "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert {r["name"]: r["package"] for r in listing["backends"]}[name] == winner
    assert [d["package"] for d in listing["disabled"]] == [loser]
    code, out, err = cli(capsys, "--backend", name, "train", "--data", str(small_text), "--steps", "2",
                         "--block-size", "4", "--out", str(tmp_path / "ck"), "--max-new-tokens", "0", "--json")
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and loser in warnings[0] and winner in warnings[0] and "disabled" in warnings[0], err
    assert json.loads(out.strip().splitlines()[-1])["backend"] == name


# ----------------------------------------------------------------------------
# the real example package under tests/example_plugin


def test_example_plugin_source_passes_check(monkeypatch, shakespeare):
    """The example backend's own math, checked against the reference whether or not it is installed."""
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    from bigram_example_backend import ExampleBackend

    from bigram.backends.numpy_backend import NumpyBackend
    from bigram.core.check import CheckConfig, run_check

    for dtype in ("float64", "float32"):
        [c] = run_check([("numpy", NumpyBackend), ("example", ExampleBackend)], shakespeare,
                        CheckConfig(dtype=dtype, steps=5)).comparisons
        assert c.ok, [r for r in c.rows if not r.ok]
        assert {r.tensor for r in c.rows} >= {"logits", "loss", "dlogits", "dW", "loss trajectory", "weights"}


def _example_installed() -> bool:
    try:
        importlib.metadata.distribution("bigram-example-backend")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _example_installed(), reason="pip install -e tests/example_plugin (CI does)")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_installed_example_plugin_passes_check(capsys, shakespeare_path, dtype):
    info = load_backends().get("example")
    assert info.dist == "bigram-example-backend"
    code, out, err = cli(capsys, "check", "--backends", "numpy,example", "--dtype", dtype,
                         "--data", str(shakespeare_path), "--json")
    assert code == 0, err
    assert json.loads(out)["ok"]


# ----------------------------------------------------------------------------
# every hookspec is tested and documented


def hookspec_names() -> list[str]:
    return [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "bigram_spec")]


def test_every_hookspec_is_documented_and_tested():
    names = hookspec_names()
    assert names, "no hookspecs found"
    docs = (ROOT / "docs" / "plugins.md").read_text()
    this_file = Path(__file__).name
    test_sources = "".join(p.read_text() for p in (ROOT / "tests").glob("*.py") if p.name != this_file)
    test_sources += (EXAMPLE_DIR / "bigram_example_backend" / "__init__.py").read_text()
    for name in names:
        assert inspect.getdoc(getattr(hookspecs, name)), f"hookspec {name} has no docstring"
        assert f"`{name}`" in docs, f"hookspec {name} is not documented in docs/plugins.md"
        assert f"def {name}(" in test_sources or f".{name} = hookimpl" in test_sources or \
            f"mod.{name}" in test_sources, f"hookspec {name} is implemented by no test plugin"
