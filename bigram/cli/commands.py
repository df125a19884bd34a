"""The core commands: backends, train, generate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import (
    DTYPE_HELP, PROMPT_HELP, finish_run, get_backend, note_start, print_json, renamed, state,
)
from bigram.cli.scale import TOKENIZER_HELP
from bigram.cli.options import sample_interval_option, val_data_option, val_fraction_option
from bigram.core.defaults import (
    DEFAULT_BATCH_SIZE, DEFAULT_BLOCK_SIZE, DEFAULT_DTYPE, DEFAULT_EVAL_INTERVAL, DEFAULT_LR, DEFAULT_LR_SCHEDULE,
    DEFAULT_MAX_NEW_TOKENS, DEFAULT_METHOD, DEFAULT_SEED, DEFAULT_STEPS,
)


@app.command()
def backends(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the installed backends: name, version, devices, and the package each came from."""
    from bigram.core.plugins import backend_devices, load_backends

    reg = load_backends()
    rows = [
        {"name": b.name, "version": b.version, "devices": backend_devices(reg, b), "package": b.dist,
         "description": str(getattr(b.cls, "description", ""))}
        for b in sorted(reg.backends.values(), key=lambda b: b.name)
    ]
    errors = [{"plugin": e.plugin, "package": e.dist, "error": e.error} for e in reg.errors]
    disabled = [{"plugin": e.plugin, "package": e.dist, "reason": e.error} for e in reg.disabled]
    if json_out:
        print_json({"backends": rows, "errors": errors, "disabled": disabled})
        return
    from rich.console import Console
    from rich.markup import escape  # a plugin's texts are shown as they are, never read as markup
    from rich.table import Table

    table = Table("name", "version", "devices", "package", "description")
    for r in rows:
        cells = (r["name"], r["version"], ", ".join(r["devices"]) or "-", r["package"], r["description"])
        table.add_row(*(escape(c) for c in cells))
    console = Console()
    console.print(table)
    for e in reg.errors:
        console.print("[red]broken plugin[/red] " + escape(f"{e.plugin} ({e.dist}): {e.error}"))
    for e in reg.disabled:
        console.print("[yellow]disabled plugin[/yellow] " + escape(f"{e.plugin} ({e.dist}): {e.error}"))


@app.command()
def train(
    ctx: typer.Context,
    data: Optional[Path] = typer.Option(
        None, "--data", help="UTF-8 text file, or a DIR from `bigram data prepare` (memory-mapped). Default: Tiny Shakespeare."
    ),
    steps: int = typer.Option(DEFAULT_STEPS, "--steps", help="Optimizer steps."),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", help="Sequences per batch (B)."),
    block_size: int = typer.Option(DEFAULT_BLOCK_SIZE, "--block-size", help="Tokens per sequence (T)."),
    lr: float = typer.Option(DEFAULT_LR, "--lr", help="AdamW learning rate (cosine: the first step's)."),
    lr_schedule: str = typer.Option(
        DEFAULT_LR_SCHEDULE, "--lr-schedule", help="cosine (decay from --lr to --min-lr over the run) or constant."
    ),
    min_lr: Optional[float] = typer.Option(None, "--min-lr", help="Where cosine ends. Default: --lr / 10."),
    decay_steps: Optional[int] = typer.Option(
        None, "--decay-steps", help="Step at which cosine reaches --min-lr (then stays). Default: --steps."
    ),
    weight_decay: float = typer.Option(0.01, "--weight-decay", help="AdamW decoupled weight decay."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed for weights, batches and the sample."),
    eval_interval: int = typer.Option(DEFAULT_EVAL_INTERVAL, "--eval-interval", help="Steps between evaluations."),
    eval_batches: Optional[int] = typer.Option(
        None, "--eval-batches", help="Estimate losses on N random batches (the lecture's way) instead of exactly."
    ),
    dtype: str = typer.Option(DEFAULT_DTYPE, "--dtype", help=DTYPE_HELP),
    method: str = typer.Option(
        DEFAULT_METHOD, "--method", help="counts (each step from the batch's bigram counts: same gradient, faster) or textbook."
    ),
    out: Path = typer.Option(Path("out"), "--out", help="Checkpoint directory."),
    max_new_tokens: int = typer.Option(
        DEFAULT_MAX_NEW_TOKENS, "--max-new-tokens", help="Tokens to sample after training, as `generate` does (0: none)."
    ),
    sample_old: Optional[int] = typer.Option(None, "--sample", hidden=True, help="Deprecated: --max-new-tokens."),
    json_out: bool = typer.Option(False, "--json", help="Human output to stderr, one JSON object to stdout."),
    resume: Optional[str] = typer.Option(
        None, "--resume", help="Continue the run saved in this checkpoint directory (its hyperparameters are kept); "
        "auto: continue the run in --out if it holds one (same flags; --steps is the run's total), else start it.",
    ),
    save_interval: Optional[int] = typer.Option(
        None, "--save-interval", help="Also save a checkpoint every N steps (SIGINT/SIGTERM always save): "
        "at most N steps are lost when a process is killed.",
    ),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help=TOKENIZER_HELP),
    distributed: bool = typer.Option(
        False, "--distributed", help="Run as one rank of a torchrun job (torch backend, DDP); --batch-size is the total."
    ),
    val_fraction: Optional[float] = val_fraction_option(),
    val_data: Optional[Path] = val_data_option(),
    sample_interval: Optional[int] = sample_interval_option(),
) -> None:
    """Train a bigram model, save a checkpoint and print a sample."""
    from bigram.core.generate import check_generation_options

    max_new_tokens = renamed(ctx, "--sample", sample_old, "--max-new-tokens", "max_new_tokens")
    check_generation_options(max_new_tokens, 1.0, None)
    if resume is not None:
        from bigram.cli.resume import resume_command

        if resume_command(ctx, resume, data=data, steps=steps, out=out, save_interval=save_interval,
                          max_new_tokens=max_new_tokens, json_out=json_out, dtype=dtype, tokenizer=tokenizer,
                          distributed=distributed, val_fraction=val_fraction, val_data=val_data,
                          sample_interval=sample_interval):
            return None
        # --resume auto and --out holds no checkpoint: the run starts here
    from bigram.api.functions import train as run_train

    st = state(ctx)
    model = run_train(
        data, get_backend(st.backend, ctx), steps, batch_size=batch_size, block_size=block_size, lr=lr,
        lr_schedule=lr_schedule, min_lr=min_lr, decay_steps=decay_steps, weight_decay=weight_decay, seed=seed,
        eval_interval=eval_interval, eval_batches=eval_batches, method=method, dtype=dtype, device=st.device,
        tokenizer=tokenizer, out=out, save_interval=save_interval, distributed=distributed,
        val_fraction=val_fraction, val_data=val_data, sample_interval=sample_interval,
        log=lambda msg: print(msg, file=sys.stderr),
    )
    if model.rank == 0:
        finish_run(model, steps=steps, seed=seed, max_new_tokens=max_new_tokens, json_out=json_out)


@app.command()
def generate(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(Path("out"), "--checkpoint", help="Checkpoint directory."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help=PROMPT_HELP),
    max_new_tokens: int = typer.Option(DEFAULT_MAX_NEW_TOKENS, "--max-new-tokens", help="Tokens to sample."),
    temperature: float = typer.Option(1.0, "--temperature", help="Divide logits by T; 0 = greedy."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Sample only from the K most likely tokens."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed for the sampling coins."),
) -> None:
    """Sample text from a checkpoint. Same checkpoint and seed: same text on every backend."""
    from bigram.api.functions import load
    from bigram.core.generate import check_generation_options

    check_generation_options(max_new_tokens, temperature, top_k)
    st = state(ctx)
    model = load(checkpoint, get_backend(st.backend, ctx), device=st.device)
    if not prompt:
        note_start(model.tokenizer)
    text = model.generate(max_new_tokens, prompt=prompt, seed=seed, temperature=temperature, top_k=top_k)
    sys.stdout.write(text + "\n")


@app.command()
def vocab(
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint directory (default: out)."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="Count the characters of this text (alone: show its own vocabulary)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
) -> None:
    """Each character of the vocabulary with its id and its count in the corpus; invisible ones escaped.

    A checkpoint's counts are those recorded when it was trained (on its --data);
    --data counts another text in the checkpoint's vocabulary.
    """
    from bigram.api.functions import vocab as vocab_of

    table = vocab_of(data, None) if checkpoint is None and data is not None else vocab_of(checkpoint or Path("out"), data)
    if json_out:
        print_json(table.to_json())
    else:
        print(table)
