"""Resume and preemption, found by an attacker's review: each case misbehaved before its fix."""

from __future__ import annotations

import re
import shlex

from clirun import message_lines, run_cli, train_checkpoint
from test_attack_fixes import NP, data  # noqa: F401 (data: the fixture)
from bigram.core.distributed import Solo
from bigram.core.train import continue_command


def _printed(err: str) -> list[str]:
    """The commands between backticks in the CLI's messages, as a shell splits them."""
    return [shlex.split(c) for line in message_lines(err) for c in re.findall(r"`([^`]+)`", line)]


def test_printed_resume_commands_spell_a_directory_named_auto_as_a_directory(tmp_path, data, monkeypatch):
    """`--resume auto` is the keyword: a printed `--resume auto` for the checkpoint in ./auto started (or
    continued) the run in --out (default `out`) instead of continuing ./auto."""
    monkeypatch.chdir(tmp_path)
    train_checkpoint("auto", data, steps=3)
    code, _, err = run_cli([*NP, "train", "--data", data, "--steps", 2, "--out", "auto", "--max-new-tokens", 0])
    assert code == 0, err
    replacing = _printed(err)  # "... to continue that run instead, use `bigram train --resume ./auto`"
    code, _, err = run_cli([*NP, "train", "--data", data, "--resume", "auto", "--out", "auto", "--steps", 5,
                            "--max-new-tokens", 0])
    assert code == 2
    other_run = _printed(err)  # "... or `--resume ./auto --steps N` to train that run N more steps"
    interrupted = shlex.split(continue_command("auto", Solo(), ["--data", str(data)]))
    commands = [*replacing, *other_run, interrupted]
    assert len(commands) == 3
    for words in commands:
        resume = words[words.index("--resume") + 1]
        assert resume != "auto" and (tmp_path / resume).samefile(tmp_path / "auto"), words
    # the interrupt's command, run as printed: it continues ./auto (step 2), and makes no ./out
    code, _, err = run_cli([*interrupted[1:], "--steps", 1, "--max-new-tokens", 0])
    assert code == 0, err
    assert "resuming auto at step 2 for 1 steps" in err
    assert not (tmp_path / "out").exists()
