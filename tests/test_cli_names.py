"""One option, one name, one meaning, wherever it is typed (issue 11, points 5 and 9).

- The root's options (--backend, --device, and any other the root callback
  declares) work after the command too, and every command's help lists them.
- -h is --help everywhere; shell completion is typer's.
- train's sample and generate's text are both --max-new-tokens (--sample
  still works, with a note); --out is the directory or file a command writes
  (plot: exactly that file), bench's prefix is --report (--out still works,
  with a note); every command's --dtype defaults to float32.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer

from clirun import message_lines, ok, run_cli, small_text


@pytest.fixture
def text(tmp_path, shakespeare_path):
    path = tmp_path / "s.txt"
    path.write_text(small_text(shakespeare_path, 5000), encoding="utf-8")
    return path


def command_paths():
    """Every command's path below `bigram`: ["train"], ["data", "prepare"], ..."""
    from bigram.cli.app import command

    def walk(group, prefix):
        for name, cmd in sorted(group.commands.items()):
            if hasattr(cmd, "commands"):
                yield from walk(cmd, [*prefix, name])
            else:
                yield [*prefix, name]

    return list(walk(command(), []))


# ----------------------------------------------------------------------------
# point 5: root options after the command, -h, completion


def test_backend_and_device_work_after_the_command(text, tmp_path):
    out, _ = ok(["train", "--data", text, "--steps", "2", "--out", tmp_path / "a", "--max-new-tokens", "0",
                 "--json", "--backend", "numpy", "--device", "cpu"])
    got = json.loads(out)
    assert got["backend"] == "numpy" and got["device"] == "cpu"
    # both sides: the one after the command counts, as the last of a repeated option does
    out, _ = ok(["-b", "torch", "train", "-b", "numpy", "--data", text, "--steps", "2", "--out", tmp_path / "b",
                 "--max-new-tokens", "0", "--json"])
    assert json.loads(out)["backend"] == "numpy"
    code, _, err = run_cli(["train", "--data", text, "--backend", "nope", "--out", tmp_path / "c"])
    assert code == 2 and "unknown backend 'nope'" in err and not (tmp_path / "c").exists()


def test_a_backend_typed_after_the_command_counts_as_typed_for_resume(text, tmp_path):
    ok(["-b", "numpy", "train", "--data", text, "--steps", "4", "--out", tmp_path / "ck", "--max-new-tokens", "0"])
    # resume takes the checkpoint's backend unless --backend is typed: typed after the command counts
    out, _ = ok(["train", "--resume", tmp_path / "ck", "--data", text, "--steps", "2", "--max-new-tokens", "0",
                 "--json", "--backend", "torch"])
    assert json.loads(out)["backend"] == "torch"


def test_every_commands_help_lists_the_root_options_and_h_is_help():
    paths = command_paths()
    assert ["train"] in paths and ["data", "prepare"] in paths
    for path in [[]] + paths:
        out, _ = ok([*path, "--help"])
        assert ok([*path, "-h"])[0] == out
        for flag in ("--backend", "--device"):
            assert flag in out, (path, flag)


def test_any_root_option_is_shared_and_a_commands_own_option_keeps_its_name():
    from typer.main import get_command

    from bigram.cli.rootopts import share_root_options

    app = typer.Typer()
    seen: dict = {}

    @app.callback()
    def root(ctx: typer.Context, threads: int = typer.Option(1, "--threads")):
        ctx.obj = {"threads": threads}

    @app.command()
    def work(ctx: typer.Context, n: int = typer.Option(0, "--n")):
        seen.update(ctx.find_root().obj, n=n)

    @app.command()
    def own(ctx: typer.Context, threads: int = typer.Option(7, "--threads")):
        seen.update(own=threads, root=ctx.find_root().obj["threads"])

    cmd = get_command(app)
    share_root_options(cmd)
    cmd.main(["work", "--threads", "3", "--n", "2"], standalone_mode=False)
    assert seen == {"threads": 3, "n": 2}
    seen.clear()
    cmd.main(["--threads", "5", "own", "--threads", "9"], standalone_mode=False)
    assert seen == {"own": 9, "root": 5}


def test_shell_completion_the_typer_way_knows_the_shared_options():
    env = {**os.environ, "_BIGRAM_COMPLETE": "complete_bash", "COMP_WORDS": "bigram train --ba", "COMP_CWORD": "2"}
    r = subprocess.run([sys.executable, "-m", "bigram"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and {"--backend", "--batch-size"} <= set(r.stdout.split())
    # The script --show-completion prints; asked for by name, since shell detection depends on the parent process.
    env = {**os.environ, "_BIGRAM_COMPLETE": "source_bash"}
    r = subprocess.run([sys.executable, "-m", "bigram"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "_BIGRAM_COMPLETE" in r.stdout and "complete -o default" in r.stdout
    out, _ = ok(["--help"])
    assert "--install-completion" in out and "--show-completion" in out


def test_command_help_with_the_shared_options_stays_torch_free():
    probe = ("import sys\nfrom bigram.cli.app import main\n"
             "try:\n    main(['train', '-h'])\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "--backend" in r.stdout and r.stderr.strip().splitlines()[-1] == "False False"


# ----------------------------------------------------------------------------
# point 9: one name per meaning


def test_train_samples_with_max_new_tokens_as_generate_does(text, tmp_path):
    out, err = ok(["-b", "numpy", "train", "--data", text, "--steps", "20", "--out", tmp_path / "ck",
                   "--max-new-tokens", "25"])
    gen, _ = ok(["-b", "numpy", "generate", "--checkpoint", tmp_path / "ck", "--max-new-tokens", "25"])
    assert out == gen and len(out) == 1 + 25 + 1  # the newline it starts from, 25 tokens, the line's end
    assert "deprecated" not in err
    old, err = ok(["-b", "numpy", "train", "--data", text, "--steps", "20", "--out", tmp_path / "ck2",
                   "--sample", "25"])
    assert old == out and "note: --sample is deprecated; use --max-new-tokens (same meaning)" in err
    code, _, err = run_cli(["-b", "numpy", "train", "--data", text, "--out", tmp_path / "x", "--sample", "5",
                            "--max-new-tokens", "7"])
    assert code == 2 and len(message_lines(err)) == 1 and "give it once" in err and not (tmp_path / "x").exists()
    code, _, err = run_cli(["-b", "numpy", "train", "--data", text, "--out", tmp_path / "y", "--max-new-tokens", "-1"])
    assert code == 2 and "--max-new-tokens must be >= 0" in err and not (tmp_path / "y").exists()


def test_plot_writes_exactly_the_file_named_by_out(text, tmp_path):
    pytest.importorskip("matplotlib")
    ok(["-b", "numpy", "train", "--data", text, "--steps", "10", "--out", tmp_path / "ck", "--max-new-tokens", "0"])
    out, _ = ok(["-b", "numpy", "plot", "--checkpoint", tmp_path / "ck", "--out", tmp_path / "figure"])
    assert out.strip() == str(tmp_path / "figure")
    assert (tmp_path / "figure").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "figure.png").exists()
    ok(["-b", "numpy", "plot", "--checkpoint", tmp_path / "ck", "--out", tmp_path / "figure.svg"])
    assert b"<svg" in (tmp_path / "figure.svg").read_bytes()[:2000]
    code, out, err = run_cli(["-b", "numpy", "plot", "--checkpoint", tmp_path / "ck", "--out", tmp_path / "ck"])
    assert code == 2 and out == "" and err.count("\n") == 1 and "is a directory" in err
    assert f"--out {tmp_path / 'ck' / 'plot.png'}" in err and not (tmp_path / "ck.png").exists()


def test_bench_writes_its_report_to_a_prefix_named_report(tmp_path, monkeypatch):
    import bigram.bench

    monkeypatch.setattr(bigram.bench, "run_bench", lambda cfg: {"measures": {"m": 1}, "targets": []})
    monkeypatch.setattr(bigram.bench, "to_markdown", lambda report: "| measure |\n")
    _, err = ok(["bench", "--quick", "--report", tmp_path / "r" / "run.v2"])
    assert json.loads((tmp_path / "r" / "run.v2.json").read_text())["measures"] == {"m": 1}
    assert (tmp_path / "r" / "run.v2.md").read_text() == "| measure |\n"  # suffixes appended, never swapped in
    assert not (tmp_path / "r" / "run.json").exists() and "deprecated" not in err
    _, err = ok(["bench", "--quick", "--out", tmp_path / "old"])
    assert (tmp_path / "old.json").is_file() and "note: --out is deprecated; use --report" in err


def test_every_dtype_option_defaults_to_float32(text):
    from bigram.cli.app import command

    root = command()
    defaults = {}
    for path in command_paths():
        cmd = root
        for name in path:
            cmd = cmd.commands[name]
        defaults.update({"/".join(path): p.default for p in cmd.params if p.name == "dtype"})
    assert set(defaults) >= {"train", "check"} and set(defaults.values()) == {"float32"}
    out, _ = ok(["check", "--backends", "numpy,torch", "--data", text, "--steps", "2", "--json"])
    assert json.loads(out)["dtype"] == "float32"
    out, _ = ok(["check", "--backends", "numpy,torch", "--data", text, "--steps", "2", "--dtype", "float64", "--json"])
    report = json.loads(out)
    assert report["dtype"] == "float64" and report["ok"]  # the old default, one option away
