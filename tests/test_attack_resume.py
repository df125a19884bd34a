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


def test_resume_auto_on_an_ended_run_checks_the_corpus(tmp_path, data):
    """`--resume auto` on a run that had ended said "nothing left to train" (exit 0) whatever --data was:
    a command for another corpus, even one of another vocabulary, reported its run as done."""
    out = tmp_path / "out"
    run = [*NP, "train", "--resume", "auto", "--out", out, "--steps", 5, "--max-new-tokens", 0]
    assert run_cli([*run, "--data", data])[0] == 0
    other = tmp_path / "other.txt"
    other.write_text(data.read_text() + "~")  # one character more: another vocabulary
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run_cli([*run, "--data", other])
    assert code == 2 and len(message_lines(err)) == 1, err
    assert "has a vocabulary of" in err and "nothing left" not in err
    other.write_text(data.read_text()[::-1])  # the same characters, another text: a warning names it
    code, _, err = run_cli([*run, "--data", other])
    assert code == 0 and "is not the text checkpoint" in err and "nothing left to train" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resume_auto_json_on_an_ended_run_is_one_object_with_its_final_numbers(tmp_path, data):
    """--json promises one JSON object on stdout; a restart that found its run ended printed none."""
    import json

    run = [*NP, "train", "--resume", "auto", "--out", tmp_path / "out", "--data", data, "--steps", 5, "--json"]
    code, out, err = run_cli(run)
    assert code == 0, err
    first = json.loads(out)
    code, out, err = run_cli(run)
    assert code == 0 and "nothing left to train" in err, err
    again = json.loads(out)
    same = ("backend", "device", "steps", "train_loss", "val_loss", "exact", "eval_batches", "checkpoint")
    assert {k: again[k] for k in same} == {k: first[k] for k in same}
    assert again["tokens_per_s"] == 0.0


def test_resume_dir_steps_0_is_bad_input_not_auto_nothing_left(tmp_path, data):
    """`--resume DIR --steps 0` answered "--resume auto: ... nothing left to train" with exit 0: a message
    about a flag not given, for a value a fresh run refuses."""
    ck = train_checkpoint(tmp_path / "ck", data, steps=3)
    code, _, err = run_cli([*NP, "train", "--resume", ck, "--data", data, "--steps", 0, "--max-new-tokens", 0])
    assert code == 2 and message_lines(err) == [err.strip()] and "--steps must be a positive integer" in err
