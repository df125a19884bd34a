"""Pieces shared by the CLI commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from bigram.core.errors import BigramError

DTYPE_HELP = "float32 (the default of every command: what checkpoints hold) or float64."


def state(ctx: typer.Context):
    return ctx.find_root().obj


def get_backend(name: str, ctx: typer.Context | None = None):
    """The backend called `name`; other plugins that failed to load get a warning, not a failure.

    With the command's ctx, plugins are loaded (and a broken one reported) once per command.
    """
    from bigram.core.plugins import load_backends, report_errors

    st = state(ctx) if ctx is not None else None
    reg = getattr(st, "registry", None)
    fresh = reg is None
    if fresh:
        reg = load_backends()
        if st is not None:
            st.registry = reg
    info = reg.get(name)  # raises a one-line BigramError listing the available ones (and the broken)
    if fresh:
        report_errors(reg)
    return info


def build_model(ctx: typer.Context, weights, *, dtype: str = "float32", optim=None):
    from bigram.core.backend import AdamWConfig

    st = state(ctx)
    info = get_backend(st.backend, ctx)
    return info.cls.create(weights, device=st.device, dtype=dtype, optim=optim or AdamWConfig())


def renamed(ctx: typer.Context, old: str, old_value, new: str, param: str):
    """The value of option `new` (parameter `param`), also accepted under its old spelling `old`.

    The old spelling keeps working with a note on stderr (never on stdout,
    which may be JSON); giving both with different values is an error.
    """
    value = ctx.params[param]
    if old_value is None:
        return value
    src = ctx.get_parameter_source(param)
    if src is not None and src.name not in ("DEFAULT", "DEFAULT_MAP") and value != old_value:
        raise BigramError(f"{old} {old_value} and {new} {value} name the same option; give it once, as {new}")
    print(f"note: {old} is deprecated; use {new} (same meaning)", file=sys.stderr)
    return old_value


def load_corpus(data: Path | None, tokenizer=None):
    from bigram.core.data import Corpus

    return Corpus.load(data, tokenizer=tokenizer)


def print_json(obj: Any) -> None:
    """One JSON object on stdout; NaN and infinities become null."""
    from bigram.core.metrics import json_safe

    sys.stdout.write(json.dumps(json_safe(obj)) + "\n")


def finish_run(model, *, steps: int, seed: int, max_new_tokens: int, json_out: bool, **extra) -> None:
    """What `train` prints after training, fresh or resumed: speed, a sample, the JSON result.

    `model` is the bigram.Model that bigram.train returned (its `result` holds the run's numbers).
    """
    result = model.result
    print(f"{steps} steps in {result.train_s:.2f} s ({result.tokens_per_s:,.0f} tokens/s)", file=sys.stderr)
    if max_new_tokens > 0:
        note_start(model.tokenizer)
        print(model.generate(max_new_tokens, seed=seed), file=sys.stderr if json_out else sys.stdout)
    if json_out:
        print_json({
            "backend": model.backend, "device": model.device, "steps": result.step, "train_loss": result.train_loss,
            "val_loss": result.val_loss, "exact": result.exact, "eval_batches": result.eval_batches,
            "wall_s": round(result.wall_s, 4), "tokens_per_s": result.tokens_per_s, "checkpoint": result.checkpoint,
            **extra,
        })


PROMPT_HELP = ("Text to continue (default: a newline; a vocabulary without one starts from its token 0, "
               "which is named on stderr).")


def note_start(tokenizer) -> None:
    """Where a sample with no prompt starts is a newline; a vocabulary without one starts from token 0, named here."""
    from bigram.core.sampling import start_token

    tid, newline = start_token(tokenizer)
    if not newline:
        shown = json.dumps(tokenizer.decode([tid]), ensure_ascii=False)
        print(f"note: the vocabulary has no newline, so the sample starts from token {tid} ({shown}); "
              "pass --prompt to choose", file=sys.stderr)
