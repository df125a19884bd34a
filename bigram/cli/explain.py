"""`bigram explain`: one real batch through the model, step by step, as in the lecture."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bigram.cli.app import app
from bigram.cli.common import build_model, get_backend, load_corpus, state
from bigram.core.defaults import DEFAULT_SEED


def q(s: str) -> str:
    """A string quoted with its newlines visible: 'First\\nCi'."""
    return "'" + s.replace("\\", "\\\\").replace("\n", "\\n").replace("'", "\\'") + "'"


@app.command()
def explain(
    ctx: typer.Context,
    data: Optional[Path] = typer.Option(None, "--data", help="UTF-8 text file (default: Tiny Shakespeare, cached)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Sequences in the batch (B)."),
    block_size: int = typer.Option(8, "--block-size", help="Tokens per sequence (T)."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Seed of the batch, the initial table and the sample."),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="Explain a trained table instead of the untrained N(0,1) one."
    ),
) -> None:
    """Walk one real batch through the bigram: shapes, lookup, softmax, the loss by hand, sampling."""
    from rich.console import Console

    from bigram.core.errors import require_positive
    from bigram.core.explain import explain as run_explain
    from bigram.core.sampling import init_weights

    require_positive(batch_size=batch_size, block_size=block_size)
    st = state(ctx)
    get_backend(st.backend, ctx)
    if checkpoint is not None:
        from bigram.core.checkpoint import load_checkpoint

        ck = load_checkpoint(checkpoint)

        corpus = load_corpus(data, ck.tokenizer)
        W, source = ck.weights, str(checkpoint)
    else:
        corpus = load_corpus(data)
        W, source = init_weights(corpus.tokenizer.vocab_size, seed), f"untrained N(0,1) table (seed {seed})"
    model = build_model(ctx, W, dtype=str(W.dtype))
    ex = run_explain(model, corpus, backend=st.backend, weights=source, batch_size=batch_size,
                     block_size=block_size, seed=seed)
    console = Console(highlight=True)
    render(ex, console if console.is_terminal else Console(highlight=False, color_system=None, soft_wrap=True))


def render(ex, con) -> None:
    """Print an Explanation: rich in a terminal, plain text (no escape codes) when piped."""
    B, T, C = ex.logits_shape
    con.print(f"backend {ex.backend}, weights: {ex.weights}; B={B} sequences of T={T} characters, V={C}",
              markup=False)
    for i, step in enumerate((_batch, _pairs, _lookup, _softmax, _nll, _init, _generate), 1):
        title = f"{i}. {step.__doc__}"
        if con.is_terminal:
            con.rule(f"[bold]{title}", align="left")
        else:  # plain text for pipes and files: a heading, no box-drawing
            _p(con, f"\n{title}\n{'-' * len(title)}")
        step(ex, con)


def _p(con, text: str) -> None:
    con.print(text, markup=False)


def _batch(ex, con) -> None:
    """a batch: xb and yb, (B,T)"""
    for name, ids, rows in (("xb (inputs)", ex.xb, ex.x_rows), ("yb (targets)", ex.yb, ex.y_rows)):
        _p(con, f"{name} {tuple(ids.shape)}:")
        for r, text in zip(ids, rows):
            _p(con, f"  [{' '.join(f'{int(i):2d}' for i in r)}]  {q(text)}")
    _p(con, "yb is xb shifted left by one: each yb[b,t] is the character after xb[b,t].")


def _pairs(ex, con) -> None:
    """context -> target: B*T examples in one batch"""
    for ctx_text, target in ex.pairs:
        _p(con, f"when the input is {q(ctx_text)} the target is {q(target)}"
                f"  (the bigram reads only {q(ctx_text[-1])})")
    B, T, _ = ex.logits_shape
    _p(con, f"... the same for the other {B - 1} rows: {B * T} (context, target) examples in all.")


def _lookup(ex, con) -> None:
    """embedding lookup: idx (B,T) -> logits (B,T,C)"""
    import numpy as np  # here, not at the top: `bigram --help` stays free of NumPy

    w = ex.worked
    _p(con, f"logits = token_embedding_table(xb): shape {ex.logits_shape}")
    _p(con, f"logits[b,t] is row xb[b,t] of the (V,V) table, a plain lookup: {ex.lookup_matches}")
    _p(con, f"e.g. logits[0,0] (row {int(ex.xb[0, 0])}, {q(w.input_char)}) starts "
            f"{np.array2string(w.logits[:6], precision=4, separator=', ')[:-1]}, ...]")
    _p(con, f"cross_entropy wants (N,C) and (N,): logits.view(B*T, C) {ex.flat_shape} "
            f"against targets.view(B*T) {ex.targets_shape}")


def _softmax(ex, con) -> None:
    """softmax: each row becomes a probability distribution"""
    s = ex.prob_row_sums
    _p(con, f"probs = softmax(logits, dim=-1): {len(s)} rows, each sums to 1 "
            f"(min {s.min():.8f}, max {s.max():.8f})")


def _nll(ex, con) -> None:
    """one example's negative log-likelihood, by hand"""
    w = ex.worked
    _p(con, f"position (b={w.b}, t={w.t}): input {q(w.input_char)}, target {q(w.target_char)} (id {w.target_id})")
    _p(con, f"  max logit m                  = {w.max_logit:.6f}")
    _p(con, f"  sum_j exp(logit_j - m)       = {w.sum_exp:.6f}")
    _p(con, f"  p(target) = exp(logit_{w.target_id} - m) / sum = {w.prob:.6f}")
    _p(con, f"  NLL = -ln p(target)          = {w.nll_by_hand:.6f}")
    _p(con, f"  backend cross-entropy on it  = {w.nll_backend:.6f}  (difference {abs(w.nll_by_hand - w.nll_backend):.1e})")
    _p(con, f"the batch loss is the mean over all {ex.flat_shape[0]} positions: by hand "
            f"{ex.batch_loss_by_hand:.6f}, backend {ex.batch_loss:.6f}")


def _init(ex, con) -> None:
    """the loss to expect at initialization"""
    _p(con, f"if every next character were equally likely: -ln(1/{ex.vocab_size}) = ln {ex.vocab_size} "
            f"= {ex.expected_init_loss:.4f}")
    if ex.weights.startswith("untrained"):
        why = ("N(0,1) logits are not uniform, so an untrained table is confidently wrong and starts above "
               "ln V (about ln V + 1/2); training brings it down toward the optimum (`bigram eval`).")
    else:
        why = "a trained table should sit well below ln V, the loss of knowing nothing."
    _p(con, f"observed on this batch: {ex.batch_loss:.4f}. {why}")


def _generate(ex, con) -> None:
    """generation: the last time step picks the next character"""
    g = ex.generation
    _p(con, f"logits {ex.logits_shape} -> logits[:, -1, :] {g.last_logits_shape} -> softmax "
            f"{tuple(g.probs.shape)} -> one sample per row {tuple(g.next_ids.shape)}")
    for b, (last, nxt) in enumerate(zip(g.last_chars, g.next_chars)):
        p = g.probs[b, g.next_ids[b]]
        _p(con, f"  row {b}: last {q(last)} -> sampled {q(nxt)} (p = {p:.4f}, coin {g.coins[b]:.4f})")
    _p(con, "append the samples to idx, (B,T+1), and repeat: only the last character is ever read.")
